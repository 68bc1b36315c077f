"""The ranking's view of one user's index in Redis, for one search."""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
    entry_id,
    hidden_ranges,
    metadata_in_message,
)
from agentmem.services.memory.redis.keys import UserKeys
from agentmem.services.memory.redis.search_cache import DataVersion, SearchCache, UserCache
from agentmem.services.memory.redis.vector_cache import VectorCache, VectorSnapshot

__all__ = ["UserIndexView"]

# Kinds of what the view keeps in the user's cache: postings by term, DocInfo and stored
# messages by doc id, neighbour ids by doc id (one kind per radius: _NEAR + radius).
_POSTINGS = "postings"
_DOCS = "docs"
_MESSAGES = "messages"
_NEAR = "near:"

# Estimated bytes of Python memory per item kept, for the cache's budget: what a dict
# slot, the item's tuple and the value's object cost, and per posting (6 packed bytes
# and a 4-byte head, or a dict entry and an int), per byte of metadata JSON (decoded
# into dicts), per neighbour id and per byte of a message.
_POSTINGS_COST, _PER_POSTING, _PER_DICT_POSTING = 500, 10, 120
_DOC_COST, _PER_METADATA_BYTE = 300, 10
_NEAR_COST, _PER_NEIGHBOUR = 200, 4
_MESSAGE_COST = 150


class UserIndexView:
    """One user's index as :class:`agentmem.search.ranking.VectorIndexView` reads it.

    Each read is one script whose reply starts with the user's
    :class:`~agentmem.services.memory.redis.search_cache.DataVersion`; the reply
    validates the user's cache in ``search_cache``, and what it brings is kept there.
    Postings of all query terms and the corpus counts come in one script call (which
    refreshes the user's expiry, as any read): of the terms cached, only the postings
    added since; never the postings of memories a write or removal in steps has not
    finished with. Index entries, neighbour ids and messages come from the cache once a
    reply of this search has validated it, else from Redis; the neighbour lookup also
    returns each memory's index entry, which later serves :meth:`documents`. What the
    search has read or found serves it to its end, whatever the cache drops meanwhile.
    Lives for one search; the vectors come from the service's ``vector_cache``.
    """

    def __init__(
        self,
        service: RedisServiceBase,
        keys: UserKeys,
        search_cache: SearchCache,
        vector_cache: VectorCache,
    ) -> None:
        self._service = service
        self._keys = keys
        self._search_cache = search_cache
        self._vector_cache = vector_cache
        # The user's cache as validated by the latest reply of this search; nothing is
        # served from the cache before.
        self._cache: UserCache | None = None
        # What this search has read or found in the cache, by kind: it serves the
        # search's later reads whatever the cache drops meanwhile.
        self._seen: dict[str, dict[Any, Any]] = {}
        self._stats: CorpusStats | None = None
        # Entries whose metadata is in their message, not read yet, with the cache
        # validated by the reply that brought them.
        self._unresolved: dict[int, tuple[DocInfo, UserCache]] = {}
        self._vectors: VectorSnapshot | None = None

    def _validated(self, version: DataVersion) -> UserCache:
        cache = self._cache
        if cache is not None and cache.holds(version):
            cache.advance(version.next_id)
        else:
            cache = self._cache = self._search_cache.validated(self._keys.meta, version)
        return cache

    async def _read(
        self, script: str, args: Sequence[Any]
    ) -> tuple[UserCache, DataVersion, Sequence[Any]]:
        """The cache that the reply of ``script`` validated, the version it heads, and
        the rest of it."""
        reply = await self._service.run_script(script, self._keys.all(), args)
        version = DataVersion.of(reply)
        return self._validated(version), version, reply[3:]

    def _found(self, kind: str, keys: Sequence[Any]) -> dict[Any, Any]:
        """The values of ``kind`` this search has seen or finds current in the cache."""
        seen = self._seen.setdefault(kind, {})
        found = {key: seen[key] for key in keys if key in seen} if seen else {}
        if self._cache is not None:
            cached = self._cache.found(
                kind, [key for key in keys if key not in found] if found else keys
            )
            seen.update(cached)
            found.update(cached)
        return found

    def _keep(
        self,
        cache: UserCache | None,
        kind: str,
        items: Sequence[tuple[Any, Any, int]],
        at: int | None = None,
    ) -> None:
        """Keep (key, value, cost) ``items`` for this search, and in ``cache`` (if any)
        for the next ones (see :meth:`UserCache.keep`)."""
        self._seen.setdefault(kind, {}).update((key, value) for key, value, _ in items)
        if cache is not None:
            cache.keep(kind, items, at)

    async def corpus_stats(self) -> CorpusStats:
        if self._stats is None:
            self._stats, _ = await self._postings([])
        return self._stats

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        self._stats, found = await self._postings(terms)
        return found

    async def _postings(
        self, terms: Sequence[str]
    ) -> tuple[CorpusStats, dict[str, Mapping[int, int]]]:
        # Postings held since an earlier search tell Redis what to send; they serve
        # only if the reply says they are current.
        held = self._cache or self._search_cache.peek(self._keys.meta)
        known: dict[str, tuple[int, Mapping[int, int]]] = {}
        args: list[Any] = [self._service.ttl_ms, "", ""]
        if held is not None:
            known = held.found(_POSTINGS, terms)
            args = [self._service.ttl_ms, held.epoch, held.removed]
        for term in terms:
            args += [term, known[term][0] if term in known else -1]
        cache, version, reply = await self._read("postings", args)
        try:
            stats = CorpusStats(int(reply[0]), int(reply[1]))
            found: dict[str, Mapping[int, int]] = {}
            if len(reply) == 3:  # the user has no memories
                return stats, found
            hidden = hidden_ranges(reply[2])
            for position, term in enumerate(terms):
                since, older, newest = reply[3 + 3 * position : 6 + 3 * position]
                added = Postings(ascii_bytes(older) + ascii_bytes(newest))
                if hidden:
                    added = added.without(hidden)
                # Postings after ``since``: the rest are those held, as of ``since``.
                postings = _again(cache, known[term][1], added) if int(since) else added
                cost = _POSTINGS_COST + (
                    _PER_DICT_POSTING if isinstance(postings, dict) else _PER_POSTING
                ) * len(postings)
                cache.keep(_POSTINGS, [(term, (version.next_id, postings), cost)])
                if postings:
                    found[term] = postings
            return stats, found
        except (KeyError, ValueError) as exc:
            raise CorruptDataError("the search index of a user cannot be decoded") from exc

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        wanted = list(doc_ids)
        found: dict[int, DocInfo] = self._found(_DOCS, wanted)
        missing = [
            doc_id for doc_id in wanted if doc_id not in found and doc_id not in self._unresolved
        ]
        if missing:
            cache, _, reply = await self._read("entries", missing)
            found.update(
                (info.doc_id, info) for info in self._keep_entries(cache, map(text, reply))
            )
        unresolved = [doc_id for doc_id in wanted if doc_id in self._unresolved]
        if unresolved:
            found.update(await self._resolve(unresolved))
        return {doc_id: found[doc_id] for doc_id in wanted if doc_id in found}

    def _keep_entries(self, cache: UserCache, entries: Iterable[str]) -> list[DocInfo]:
        """Decode index entries and keep their DocInfo; those whose metadata is in the
        message wait in ``_unresolved`` instead."""
        kept = []
        for entry in entries:
            info = decode_entry(entry)
            if metadata_in_message(entry):
                self._unresolved[info.doc_id] = (info, cache)
            else:
                metadata = len(entry) - entry.rindex("\t") - 1
                kept.append((info.doc_id, info, _DOC_COST + _PER_METADATA_BYTE * metadata))
        self._keep(cache, _DOCS, kept)
        return [info for _, info, _ in kept]

    async def _resolve(self, doc_ids: list[int]) -> dict[int, DocInfo]:
        """The DocInfo of memories whose entries leave the metadata in the message."""
        stored = await self._stored_messages(doc_ids)
        resolved = {}
        for doc_id in doc_ids:
            info, read_under = self._unresolved.pop(doc_id)
            value = stored.get(doc_id)
            if value is None:
                # Deleted since its entry was read.
                continue
            # Its own decoding: the hit's message, decoded apart, may be changed by
            # the caller.
            metadata = decode_message(doc_id, value).metadata
            info = resolved[doc_id] = dataclasses.replace(info, metadata=metadata)
            kept = [(doc_id, info, _DOC_COST + _PER_METADATA_BYTE * len(value))]
            # Kept beyond this search only if entry and message were read with the same
            # epoch and removal count.
            self._keep(read_under if read_under is self._cache else None, _DOCS, kept)
        return resolved

    async def messages(self, doc_ids: list[int]) -> dict[int, Message]:
        """The stored messages of ``doc_ids`` that still exist, decoded anew for the
        caller."""
        stored = await self._stored_messages(doc_ids)
        return {
            doc_id: decode_message(doc_id, stored[doc_id]) for doc_id in doc_ids if doc_id in stored
        }

    async def _stored_messages(self, doc_ids: list[int]) -> dict[int, bytes | str]:
        found: dict[int, bytes | str] = self._found(_MESSAGES, doc_ids)
        missing = [doc_id for doc_id in doc_ids if doc_id not in found]
        if missing:
            cache, _, reply = await self._read("messages", missing)
            # None: deleted between reading the index and reading the message.
            read = {
                doc_id: value
                for doc_id, value in zip(missing, reply, strict=True)
                if value is not None
            }
            self._keep(
                cache,
                _MESSAGES,
                [(doc_id, value, _MESSAGE_COST + len(value)) for doc_id, value in read.items()],
            )
            found.update(read)
        return found

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        wanted = list(doc_ids)
        kind = _NEAR + str(radius)
        found: dict[int, array[int]] = self._found(kind, wanted)
        missing = [doc_id for doc_id in wanted if doc_id not in found]
        if missing:
            cache, version, reply = await self._read("neighbours", [radius, *missing])
            parts = [text(element).split("\n", 1) for element in reply]
            entries = [entry for _, entry in parts]
            if self._seen.get(_DOCS) or cache.has(_DOCS):
                # Entries seen already need no decoding.
                ids = [entry_id(entry) for entry in entries]
                decoded = self._found(_DOCS, ids)
                entries = [
                    entry
                    for entry, doc_id in zip(entries, ids, strict=True)
                    if doc_id not in decoded and doc_id not in self._unresolved
                ]
            self._keep_entries(cache, entries)
            # Lists closed on both sides ("=") hold while memories are only added; open
            # ones ("+"), at the end of a session, only until then.
            closed: list[tuple[int, array[int], int]] = []
            open_ended: list[tuple[int, array[int], int]] = []
            for head, entry in parts:
                if head != "-":
                    doc_id = entry_id(entry)
                    # Digits only: the script takes them from the session index. Doc
                    # ids fit 32 bits; an array of them costs half a tuple of ints.
                    near = found[doc_id] = array("I", map(int, filter(None, head[1:].split(","))))
                    kept = (doc_id, near, _NEAR_COST + _PER_NEIGHBOUR * len(near))
                    (closed if head[0] == "=" else open_ended).append(kept)
            self._keep(cache, kind, closed)
            self._keep(cache, kind, open_ended, at=version.next_id)
        return {doc_id: found[doc_id] for doc_id in wanted if doc_id in found}

    async def vectors(self) -> StoredVectors:
        return (await self._snapshot()).vectors

    async def term_vectors(self) -> TermVectors:
        return (await self._snapshot()).terms

    async def _snapshot(self) -> VectorSnapshot:
        if self._vectors is None:
            snapshot = self._vectors = await self._vector_cache.snapshot(self._keys)
            # Read with the vectors, the version validates the cache as a reply does.
            self._validated(DataVersion(snapshot.epoch, snapshot.removed, snapshot.next_id))
        return self._vectors


def _again(cache: UserCache, held: Mapping[int, int], added: Postings) -> Mapping[int, int]:
    """Postings that an earlier search read, followed by those ``added`` since.

    Read again, they are worth a dict, whose lookups cost a fraction of a bisection in
    packed postings, as long as the cache has room for one.
    """
    if isinstance(held, Postings):
        if not cache.admits(_POSTINGS_COST + _PER_DICT_POSTING * (len(held) + len(added))):
            return held.extended(added)
        held = dict(held.unpacked())
    # A new dict, never an update: searches under way may hold this one.
    return {**held, **dict(added.unpacked())} if added else held
