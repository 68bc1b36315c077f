"""Users' memory and term vectors kept in the process between semantic searches.

A search needs all of a user's vectors. Reading them all every time costs a few ms per
thousand memories, so the most recently searched users' vectors stay here, and a search
asks Redis only what changed since, in the round trip that checks for changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.errors import CorruptDataError
from agentmem.search.embeddings import StoredVectors, TermVectors
from agentmem.services._redis import RedisServiceBase, text
from agentmem.services.memory.redis.codec import decode_vector, hidden_ranges, vector_pairs
from agentmem.services.memory.redis.keys import UserKeys

__all__ = ["VectorCache", "VectorSnapshot"]


@dataclass(frozen=True, slots=True)
class VectorSnapshot:
    """One user's memory and term vectors as Redis held them at some moment.

    ``epoch``, ``removed`` and ``next_id`` are the user's meta fields then: while the
    epoch and the removal count stay the same, memories were only added, with ids above
    ``next_id``, so a newer snapshot only needs those.
    """

    epoch: str
    removed: str
    next_id: int
    vectors: StoredVectors
    terms: TermVectors


def _empty() -> VectorSnapshot:
    return VectorSnapshot("", "", 0, StoredVectors.from_pairs([]), TermVectors.from_pairs([]))


class VectorCache:
    """The vectors of the ``users`` most recently searched users of one service.

    A cached user costs 4 bytes per dimension per memory and per distinct term. With
    ``users=0`` every search reads all the user's vectors.
    """

    def __init__(self, service: RedisServiceBase, users: int) -> None:
        self._service = service
        self._users = users
        # Keyed by the user's meta key; the most recently searched user last.
        self._snapshots: OrderedDict[str, VectorSnapshot] = OrderedDict()

    async def snapshot(self, keys: UserKeys) -> VectorSnapshot:
        """The user's vectors now: the cached snapshot brought up to date, or read anew.

        Whatever other processes added or removed meanwhile is seen: additions are read
        as a delta; a removal, or the user's data made anew, makes a full read.
        """
        cached = self._snapshots.get(keys.meta)
        known = [cached.epoch, cached.removed, cached.next_id] if cached else ["", "", 0]
        reply = await self._service.run_script("vector_state", keys.all(), known)
        try:
            mode = text(reply[0])
            if mode == "none":
                self._snapshots.pop(keys.meta, None)
                return _empty()
            epoch, removed, next_id = text(reply[1]), text(reply[2]), int(reply[3])
        except (IndexError, ValueError) as exc:
            raise CorruptDataError("the vector state of a user cannot be decoded") from exc
        if mode == "full" or cached is None:
            try:
                hidden = hidden_ranges(reply[6])
            except (IndexError, ValueError) as exc:
                raise CorruptDataError("the pending work of a user cannot be decoded") from exc
            snapshot = VectorSnapshot(
                epoch,
                removed,
                next_id,
                StoredVectors.from_pairs(
                    sorted(
                        (int(doc_id), vector)
                        for doc_id, vector in vector_pairs(reply[4])
                        if not any(first <= int(doc_id) <= last for first, last in hidden)
                    )
                ),
                TermVectors.from_pairs(vector_pairs(reply[5])),
            )
        else:
            snapshot = await self._updated(cached, epoch, removed, next_id, reply[4], keys)
        if epoch and self._users:
            # Data written before epochs existed has none: it is read anew every time.
            self._snapshots[keys.meta] = snapshot
            self._snapshots.move_to_end(keys.meta)
            while len(self._snapshots) > self._users:
                self._snapshots.popitem(last=False)
        return snapshot

    async def _updated(
        self,
        cached: VectorSnapshot,
        epoch: str,
        removed: str,
        next_id: int,
        added: Sequence[Any],
        keys: UserKeys,
    ) -> VectorSnapshot:
        """``cached`` with the memories added since (id, vector, terms triples)."""
        if not added and (epoch, removed, next_id) == (
            cached.epoch,
            cached.removed,
            cached.next_id,
        ):
            return cached
        vectors: list[tuple[int, Any]] = []
        unknown: set[str] = set()
        # Memories written in steps (whose entries hold no terms) are never in a delta:
        # their commit makes the next read a full one.
        for at in range(0, len(added), 3):
            if added[at + 1]:
                vectors.append((int(added[at]), decode_vector(added[at + 1])))
            unknown.update(text(added[at + 2]).split())
        wanted = sorted(term for term in unknown if term not in cached.terms)
        terms: list[tuple[str, Any]] = []
        if wanted:
            async with self._service.redis() as client:
                found = await client.hmget(keys.vocab, wanted)
            # A term without a vector came from a memory stored without an embedder.
            terms = [
                (term, decode_vector(value))
                for term, value in zip(wanted, found, strict=True)
                if value is not None
            ]
        return VectorSnapshot(
            epoch,
            removed,
            next_id,
            cached.vectors.extended(vectors),
            cached.terms.extended(terms),
        )
