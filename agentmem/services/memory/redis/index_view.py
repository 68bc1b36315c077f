"""The ranking's view of one user's index in Redis, for one search."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message
from agentmem.search.embeddings import StoredVectors, TermVectors
from agentmem.search.ranking import CorpusStats, DocInfo
from agentmem.services._redis import RedisServiceBase, text
from agentmem.services.memory.redis.codec import (
    Postings,
    ascii_bytes,
    decode_entry,
    decode_message,
    hidden_ranges,
    metadata_in_message,
)
from agentmem.services.memory.redis.keys import UserKeys
from agentmem.services.memory.redis.vector_cache import VectorCache, VectorSnapshot

__all__ = ["UserIndexView"]


class UserIndexView:
    """One user's index as :class:`agentmem.search.ranking.VectorIndexView` reads it.

    Postings of all query terms and the corpus counts come in one script call (which
    refreshes the user's expiry, as any read), without the postings of memories a write
    or removal in steps has not finished with; the neighbour lookup also returns each
    memory's index entry, which later serves :meth:`documents` without another round
    trip. Lives for one search; the vectors come from the service's ``vector_cache``.
    """

    def __init__(
        self, service: RedisServiceBase, keys: UserKeys, vector_cache: VectorCache
    ) -> None:
        self._service = service
        self._keys = keys
        self._vector_cache = vector_cache
        self._stats = CorpusStats(0, 0)
        self._infos: dict[int, DocInfo] = {}
        # Memories whose metadata is in their message, not read yet.
        self._unresolved: set[int] = set()
        # Messages read for their metadata, kept so the hits need not read them again.
        self._messages: dict[int, Message] = {}
        self._near: dict[int, list[int]] = {}
        self._vectors: VectorSnapshot | None = None

    async def corpus_stats(self) -> CorpusStats:
        return self._stats

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        raw = await self._service.run_script(
            "postings", self._keys.all(), [self._service.ttl_ms, *terms]
        )
        try:
            self._stats = CorpusStats(int(raw[0]), int(raw[1]))
            found: dict[str, Mapping[int, int]] = {}
            if len(raw) == 3:  # the user has no memories
                return found
            hidden = hidden_ranges(raw[2])
            for position, term in enumerate(terms):
                older, newest = raw[3 + 2 * position], raw[4 + 2 * position]
                if older or newest:
                    postings = Postings(ascii_bytes(older) + ascii_bytes(newest))
                    found[term] = postings.without(hidden) if hidden else postings
            return found
        except ValueError as exc:
            raise CorruptDataError("the search index of a user cannot be decoded") from exc

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        wanted = list(doc_ids)
        missing = [doc_id for doc_id in wanted if doc_id not in self._infos]
        if missing:
            for entry in await self._service.run_script("entries", self._keys.all(), missing):
                self._keep(entry)
        await self._resolve([doc_id for doc_id in wanted if doc_id in self._unresolved])
        return {doc_id: self._infos[doc_id] for doc_id in wanted if doc_id in self._infos}

    def _keep(self, entry: bytes | str) -> DocInfo:
        """Decode an index entry and remember it (the first one seen of each memory)."""
        info = decode_entry(entry)
        if info.doc_id not in self._infos:
            self._infos[info.doc_id] = info
            if metadata_in_message(entry):
                self._unresolved.add(info.doc_id)
        return self._infos[info.doc_id]

    async def _resolve(self, doc_ids: list[int]) -> None:
        """Read the metadata of memories whose entries leave it in the message."""
        if not doc_ids:
            return
        async with self._service.redis() as client:
            raw = await client.hmget(self._keys.docs, doc_ids)
        for doc_id, value in zip(doc_ids, raw, strict=True):
            self._unresolved.discard(doc_id)
            if value is None:
                # Deleted since its entry was read.
                del self._infos[doc_id]
                continue
            message = self._messages[doc_id] = decode_message(doc_id, value)
            self._infos[doc_id] = dataclasses.replace(
                self._infos[doc_id], metadata=message.metadata
            )

    async def messages(self, doc_ids: list[int]) -> dict[int, Message]:
        """The stored messages of ``doc_ids`` that still exist, read once per search."""
        missing = [doc_id for doc_id in doc_ids if doc_id not in self._messages]
        if missing:
            async with self._service.redis() as client:
                raw = await client.hmget(self._keys.docs, missing)
            for doc_id, value in zip(missing, raw, strict=True):
                # None: deleted between reading the index and reading the message.
                if value is not None:
                    self._messages[doc_id] = decode_message(doc_id, value)
        return {doc_id: self._messages[doc_id] for doc_id in doc_ids if doc_id in self._messages}

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        wanted = list(doc_ids)
        missing = [doc_id for doc_id in wanted if doc_id not in self._near]
        if missing:
            raw = await self._service.run_script("neighbours", self._keys.all(), [radius, *missing])
            for entry in raw:
                near, index_entry = text(entry).split("\n", 1)
                info = self._keep(index_entry)
                if near != "-":
                    self._near[info.doc_id] = [int(value) for value in near.split(",") if value]
        return {doc_id: self._near[doc_id] for doc_id in wanted if doc_id in self._near}

    async def vectors(self) -> StoredVectors:
        return (await self._snapshot()).vectors

    async def term_vectors(self) -> TermVectors:
        return (await self._snapshot()).terms

    async def _snapshot(self) -> VectorSnapshot:
        if self._vectors is None:
            self._vectors = await self._vector_cache.snapshot(self._keys)
        return self._vectors
