"""Memories written and removed in bounded steps, so no script keeps Redis busy for long.

Redis runs one script at a time and every other client waits meanwhile; a script also
copies each argument into Lua (about 1 ms per MB). The work of an ``add_memory`` grows
with the index terms of its messages (a posting list to update per term: a few µs each)
and with their bytes, so a call of 1,000 messages or of a memory of 100,000 distinct
words would block Redis for seconds in one script. Hence:

- A batch of at most :data:`STEP_TERMS` index terms and :data:`STEP_BYTES` bytes (the
  common case: a few chat turns) is one script, ``add``.
- A larger one is a *write in steps*: ``begin`` reserves doc ids for the messages the
  session does not hold yet; ``stage`` steps store the messages and ``index`` steps the
  postings, each within those bounds; ``commit`` makes the memories visible, all at once.
  Until then, searches ignore the postings of the reserved ids (``pending`` lists them),
  so a search never sees part of a write. Every step checks that the write is still
  pending: when the user's memories were deleted meanwhile, the write starts again.
- Removing memories whose terms number more than :data:`STEP_TERMS` (a large memory,
  many memories) takes them out of every structure at once and queues their postings in
  ``pending``, which searches ignore; ``purge`` steps delete those postings.

Every step is idempotent (``index`` finds its postings already there, ``commit`` finds
the write gone, ``add`` and ``commit`` skip message ids the session holds), so a
re-sent step does nothing twice. A purge left unfinished is finished by the next write
or removal of the user. A write left unfinished (its call raised, or its process died)
stays invisible; once none of the user's pending work has progressed for a minute, the
next write or removal of the user undoes it (:meth:`MemoryWriter.settle`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.errors import BackendError
from agentmem.services._redis import RedisServiceBase, text
from agentmem.services.memory.redis.codec import encode_posting
from agentmem.services.memory.redis.keys import UserKeys

__all__ = ["STEP_BYTES", "STEP_TERMS", "MemoryWriter", "NewMemory"]

#: Index terms that one script adds or removes, at most (a step takes whole chunks of
#: this size): about 1 to 2 ms of Redis's time.
STEP_TERMS = 500
#: Bytes of messages, vectors, metadata and term vectors that one script takes, at most
#: (but a single larger message, up to the 1 MiB limit, goes in a step of its own).
STEP_BYTES = 256 * 1024
# Restarts of a write in steps that others undid before the call gives up.
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class NewMemory:
    """A message to store, encoded: what the scripts take of it."""

    message_id: str
    #: The message's stored JSON (:func:`codec.stored_json`).
    stored: str
    #: The last fields of its index entry (:func:`codec.entry_tail`).
    tail: str
    length: int
    #: Base64 of its vector, '' without one.
    vector: str
    #: (term, count) of its distinct index terms.
    counts: list[tuple[str, int]]

    @property
    def size(self) -> int:
        """Bytes the scripts take for it (about: characters)."""
        return len(self.stored) + len(self.tail) + len(self.vector) + len(self.message_id)

    def chunks(self) -> list[list[tuple[str, int]]]:
        """Its terms in chunks of at most :data:`STEP_TERMS`, as doc_terms keeps them."""
        return [self.counts[at : at + STEP_TERMS] for at in range(0, len(self.counts), STEP_TERMS)]


class MemoryWriter:
    """Writes and removes one user's memories (see the module docstring)."""

    def __init__(self, service: RedisServiceBase, keys: UserKeys) -> None:
        self._service = service
        self._keys = keys

    async def _run(self, name: str, args: Sequence[Any]) -> Any:
        return await self._service.run_script(name, self._keys.all(), args)

    async def add(self, session: str, memories: list[NewMemory], vocabulary: list[str]) -> None:
        """Store ``memories`` (distinct message ids) in the encoded ``session``, with
        the term/vector pairs ``vocabulary``, in one script or in steps."""
        terms = sum(len(memory.counts) for memory in memories)
        size = sum(memory.size for memory in memories) + sum(map(len, vocabulary))
        if terms <= STEP_TERMS and size <= STEP_BYTES:
            args: list[Any] = [
                self._service.ttl_ms,
                self._service.max_messages,
                session,
                len(memories),
                uuid.uuid4().hex,
                STEP_TERMS,
            ]
            for memory in memories:
                args += [
                    memory.message_id,
                    memory.stored,
                    memory.tail,
                    memory.length,
                    memory.vector,
                    len(memory.counts),
                ]
                for term, count in memory.counts:
                    args += [term, count]
            reply = await self._run("add", args + vocabulary)
        else:
            reply = await self._add_in_steps(session, memories, vocabulary)
        await self.settle(reply)

    async def _add_in_steps(
        self, session: str, memories: list[NewMemory], vocabulary: list[str]
    ) -> Sequence[Any]:
        ttl = self._service.ttl_ms
        ids = [memory.message_id for memory in memories]
        for _ in range(_ATTEMPTS):
            token = uuid.uuid4().hex
            reply = await self._run(
                "begin", [ttl, session, token, uuid.uuid4().hex, len(ids), *ids]
            )
            first, flags = int(reply[0]), text(reply[1])
            fresh = [memory for memory, flag in zip(memories, flags, strict=True) if flag == "1"]
            if not fresh:
                return [0, 0, 0]
            doc_ids = range(first, first + len(fresh))
            chunks = [memory.chunks() for memory in fresh]
            steps = [("stage", args) for args in _stage_steps(ttl, token, doc_ids, fresh)]
            steps += [
                ("index", args) for args in _index_steps(ttl, token, doc_ids, chunks, vocabulary)
            ]
            if not await self._steps(steps):
                continue
            args: list[Any] = [ttl, self._service.max_messages, session, token, STEP_TERMS]
            for doc_id, memory, held in zip(doc_ids, fresh, chunks, strict=True):
                args += [doc_id, memory.message_id, memory.length, len(held), memory.tail]
            reply = await self._run("commit", args)
            if int(reply[0]) >= 0:
                return list(reply)
        raise BackendError(
            f"a write in steps was undone {_ATTEMPTS} times before it ended (the user's "
            "memories were deleted meanwhile)"
        )

    async def _steps(self, steps: list[tuple[str, list[Any]]]) -> bool:
        """Run the steps in order; False as soon as one finds the write gone."""
        for name, args in steps:
            if not await self._run(name, args):
                return False
        return True

    async def delete_session(self, session: str) -> None:
        """Delete the memories of the encoded ``session``."""
        await self.settle(await self._run("delete_session", [session, STEP_TERMS]))

    async def settle(self, reply: Sequence[Any]) -> None:
        """Finish the work that a script replying ``{count, stale flag, memories to
        purge}`` left: purge the queued memories and, when the user's pending work has
        not progressed for a minute, undo its writes too. The counts come from Redis, not
        from this call, so a re-sent script, which queued nothing itself, still tells."""
        stale, queued = int(reply[1]), int(reply[2])
        if not stale and not queued:
            return
        async with self._service.redis() as client:
            fields = [text(field) async for field, _ in client.hscan_iter(self._keys.pending)]
        doc_ids = [field[2:] for field in fields if field.startswith("p:")]
        if stale:
            for field in fields:
                if field.startswith("w:"):
                    doc_ids += [text(doc_id) for doc_id in await self._run("abort", [field[2:]])]
        while doc_ids:
            left = await self._run("purge", [self._service.ttl_ms, STEP_TERMS, *doc_ids])
            doc_ids = [text(doc_id) for doc_id in left]


def _stage_steps(
    ttl: int, token: str, doc_ids: Sequence[int], memories: list[NewMemory]
) -> Iterator[list[Any]]:
    """The ARGV of each "stage" step: messages and vectors, up to STEP_BYTES a step."""
    args: list[Any] = []
    size = 0
    for doc_id, memory in zip(doc_ids, memories, strict=True):
        if args and size + memory.size > STEP_BYTES:
            yield [ttl, token, *args]
            args, size = [], 0
        args += [doc_id, memory.stored, memory.vector]
        size += memory.size
    if args:
        yield [ttl, token, *args]


def _index_steps(
    ttl: int,
    token: str,
    doc_ids: Sequence[int],
    chunks: list[list[list[tuple[str, int]]]],
    vocabulary: list[str],
) -> Iterator[list[Any]]:
    """The ARGV of each "index" step: whole chunks of terms in doc id order, then term
    vectors, up to STEP_TERMS terms and STEP_BYTES a step."""
    groups: list[Any] = []
    count = terms = size = 0
    for doc_id, held in zip(doc_ids, chunks, strict=True):
        for number, chunk in enumerate(held):
            if groups and terms + len(chunk) > STEP_TERMS:
                yield [ttl, token, count, *groups]
                groups, count, terms = [], 0, 0
            groups += [doc_id, number, len(chunk)]
            for term, term_count in chunk:
                groups += [term, encode_posting(doc_id, term_count)]
            count += 1
            terms += len(chunk)
    pairs: list[str] = []
    for at in range(0, len(vocabulary), 2):
        pair_size = len(vocabulary[at]) + len(vocabulary[at + 1])
        if (groups or pairs) and (size + pair_size > STEP_BYTES or terms >= STEP_TERMS):
            yield [ttl, token, count, *groups, *pairs]
            groups, pairs, count, terms, size = [], [], 0, 0, 0
        pairs += vocabulary[at : at + 2]
        size += pair_size
        terms += 1
    if groups or pairs:
        yield [ttl, token, count, *groups, *pairs]
