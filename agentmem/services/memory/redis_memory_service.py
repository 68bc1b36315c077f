"""Memories in Redis, with the search index kept beside them and updated atomically."""

from __future__ import annotations

import base64
import bisect
import functools
import json
import struct
import sys
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from typing_extensions import override

from agentmem._validation import (
    DEFAULT_SESSION_ID,
    check_id,
    check_optional_id,
    parse_list_filters,
    parse_search_filters,
)
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.search.analysis import index_words, term_counts
from agentmem.search.embeddings import Embedder, pack_vector
from agentmem.search.ranking import (
    CorpusStats,
    DocInfo,
    RankingParameters,
    ScoredDoc,
    hybrid_search,
    lexical_search,
)
from agentmem.services._redis import (
    DEFAULT_KEY_PREFIX,
    LUA_HELPERS,
    RedisClient,
    RedisServiceBase,
    check_positive,
    decode_id,
    encode_id,
    text,
)
from agentmem.services.memory.memory_service import MemoryHit, MemoryService, query_text

if TYPE_CHECKING:
    from agentmem.search.embeddings import StoredVectors, TermVectors

__all__ = ["RedisMemoryService"]

# The keys of one user, all in the user's cluster slot; every script gets all of them:
#   meta    hash    next_id, docs (count), length (sum of lengths), epoch (random, set
#                   when the user's data is created), removed (a count of removals):
#                   with next_id they tell a reader's cached vectors what changed
#   docs    hash    doc id -> message JSON (``_stored_json``: defaults left out)
#   order   zset    the index entry of each memory, scored by its doc id: "<doc id>\t
#                   <length>\t<session>\t<position>\t<terms>\t<created_at>\t<metadata
#                   JSON, or nothing for none>", <terms> space-separated; found by score,
#                   chronological pages by rank
#   session zset    "<session>:<position, 12 digits>:<doc id>", all scores 0: a session's
#                   memories in order: pages by rank, neighbours by lexical range
#   terms   hash    term -> postings in doc id order, 8 base64 digits each: 5 of the doc
#                   id (30 bits), 3 of the term's count (fixed width, so a reader can
#                   bisect); "<term>\t" -> the newest postings, moved to "<term>" in
#                   chunks, so an append rewrites at most a few KB whatever the term's
#                   frequency
#   vectors hash    doc id -> base64 of the packed unit vector (semantic search only)
#   vocab   hash    term -> base64 of the packed unit vector of its word (semantic search
#                   only), for query expansion; leaves with the term's last posting
# <session> is the encoded session id, which never contains ":". Every Redis entry costs
# some 60 bytes beyond its content, so the index entry is the order member rather than a
# hash value of its own, and a posting is 6 bytes in 8 base64 digits rather than 12 hex
# digits: a short chat turn costs about 950 bytes of Redis memory instead of 1,080.
# Everything stays text, so a client that decodes responses reads it too.
_KEY_NAMES = tuple(
    f"mem:{kind}" for kind in ("meta", "docs", "order", "session", "terms", "vectors", "vocab")
)

_PRELUDE = (
    LUA_HELPERS
    + """
local meta, docs, order, sessions, terms, vectors, vocab =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local TAIL_LIMIT = 4096
local MAX_DOC_ID = 2 ^ 30 - 1
local BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

-- The last ``width`` base64 digits of ``value``, most significant first.
local function base64_digits(value, width)
  local digits = {}
  for at = width, 1, -1 do
    local digit = value % 64
    digits[at] = string.sub(BASE64, digit + 1, digit + 1)
    value = (value - digit) / 64
  end
  return table.concat(digits)
end

-- The index entries (order members) of the memories of a set of ids, by id; ids of no
-- memory are left out. One range read per run of consecutive ids: a memory's neighbours
-- mostly have consecutive ids.
local function entries_of(wanted)
  local ids, found, first = {}, {}, 1
  for id in pairs(wanted) do ids[#ids + 1] = tonumber(id) end
  table.sort(ids)
  for i = 1, #ids do
    if i == #ids or ids[i + 1] ~= ids[i] + 1 then
      for _, entry in ipairs(redis.call('ZRANGEBYSCORE', order, ids[first], ids[i])) do
        found[string.match(entry, '^%d+')] = entry
      end
      first = i + 1
    end
  end
  return found
end

local function session_range(session)
  return '[' .. session .. ':', '(' .. session .. ';'
end

-- Removes memories from every structure but the session index (the callers remove those
-- entries by range); drops all of the user's keys when nothing is left.
local function remove_docs(ids)
  if #ids == 0 then return end
  local wanted, gone, length, entries = {}, {}, 0, {}
  for _, id in ipairs(ids) do wanted[id] = true end
  for id, raw in pairs(entries_of(wanted)) do
    local size, held = string.match(raw, '^%d+\\t(%d+)\\t[^\\t]*\\t%d+\\t([^\\t]*)\\t')
    length = length + tonumber(size)
    entries[#entries + 1] = raw
    local digits = base64_digits(tonumber(id), 5)
    for term in string.gmatch(held, '%S+') do
      local set = gone[term]
      if not set then set = {}; gone[term] = set end
      set[digits] = true
    end
  end
  for term, set in pairs(gone) do
    local kept = {}
    local postings = (redis.call('HGET', terms, term) or '') ..
      (redis.call('HGET', terms, term .. '\t') or '')
    redis.call('HDEL', terms, term .. '\t')
    for at = 1, #postings, 8 do
      local posting = string.sub(postings, at, at + 7)
      if not set[string.sub(posting, 1, 5)] then kept[#kept + 1] = posting end
    end
    if #kept == 0 then
      redis.call('HDEL', terms, term)
      redis.call('HDEL', vocab, term)
    else
      redis.call('HSET', terms, term, table.concat(kept))
    end
  end
  call_chunked('HDEL', docs, ids)
  call_chunked('HDEL', vectors, ids)
  call_chunked('ZREM', order, entries)
  local left = redis.call('HINCRBY', meta, 'docs', -#entries)
  redis.call('HINCRBY', meta, 'length', -length)
  redis.call('HINCRBY', meta, 'removed', 1)
  if left <= 0 then redis.call('DEL', unpack(KEYS)) end
end

local function ids_of(members)
  local ids = {}
  for i, member in ipairs(members) do ids[i] = string.match(member, '(%d+)$') end
  return ids
end

local function ids_of_entries(entries)
  local ids = {}
  for i, entry in ipairs(entries) do ids[i] = string.match(entry, '^%d+') end
  return ids
end
"""
)

_SCRIPTS = {
    # ARGV: ttl, max per session (0: none), session, count, epoch, then per memory:
    # message JSON, "<created_at>\t<metadata>", length, vector ('' if none), number of
    # terms, term/count pairs; then term/vector pairs for the vocabulary.
    "add": _PRELUDE
    + """
local ttl_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local session, n = ARGV[3], tonumber(ARGV[4])
local low, high = session_range(session)
local last = redis.call('ZREVRANGEBYLEX', sessions, high, low, 'LIMIT', 0, 1)[1]
local position = 0
if last then position = tonumber(string.sub(last, #session + 2, #session + 13)) + 1 end
-- Checked before anything is written: a script that fails halfway keeps its writes.
if tonumber(redis.call('HGET', meta, 'next_id') or '0') + n > MAX_DOC_ID then
  return redis.error_reply('doc ids of this user are exhausted (2^30 - 1 memories)')
end
redis.call('HSETNX', meta, 'epoch', ARGV[5])
local first = redis.call('HINCRBY', meta, 'next_id', n) - n + 1
local added, total, at = {}, 0, 6
for i = 0, n - 1 do
  local id = string.format('%d', first + i)
  local message, tail, length, vector, count =
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], tonumber(ARGV[at + 4])
  at = at + 5
  local held, digits = {}, base64_digits(first + i, 5)
  for _ = 1, count do
    local term = ARGV[at]
    held[#held + 1] = term
    local postings = added[term]
    if not postings then postings = {}; added[term] = postings end
    postings[#postings + 1] = digits .. base64_digits(tonumber(ARGV[at + 1]), 3)
    at = at + 2
  end
  redis.call('HSET', docs, id, message)
  if vector ~= '' then redis.call('HSET', vectors, id, vector) end
  redis.call('ZADD', order, first + i, table.concat(
    {id, length, session, string.format('%d', position), table.concat(held, ' '), tail}, '\\t'))
  redis.call('ZADD', sessions, 0, session .. ':' .. string.format('%012d', position) .. ':' .. id)
  position = position + 1
  total = total + tonumber(length)
end
for term, postings in pairs(added) do
  local recent = (redis.call('HGET', terms, term .. '\t') or '') .. table.concat(postings)
  if #recent < TAIL_LIMIT then
    redis.call('HSET', terms, term .. '\t', recent)
  else
    redis.call('HSET', terms, term, (redis.call('HGET', terms, term) or '') .. recent)
    redis.call('HDEL', terms, term .. '\t')
  end
end
-- A term's vector never changes while the term lives, so cached copies stay right.
for i = at, #ARGV, 2 do redis.call('HSETNX', vocab, ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', meta, 'docs', n)
redis.call('HINCRBY', meta, 'length', total)
if limit > 0 then
  local excess = redis.call('ZLEXCOUNT', sessions, low, high) - limit
  if excess > 0 then
    local oldest = redis.call('ZRANGEBYLEX', sessions, low, high, 'LIMIT', 0, excess)
    call_chunked('ZREM', sessions, oldest)
    remove_docs(ids_of(oldest))
  end
end
expire_keys(ttl_ms)
return n
""",
    # ARGV: session. Deletes one session's memories.
    "delete_session": _PRELUDE
    + """
local low, high = session_range(ARGV[1])
local members = redis.call('ZRANGEBYLEX', sessions, low, high)
redis.call('ZREMRANGEBYLEX', sessions, low, high)
remove_docs(ids_of(members))
return #members
""",
    # ARGV: ttl, offset, count, session ('': all). One page of message JSONs, in order.
    "page": _PRELUDE
    + """
local ttl_ms, offset, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local session = ARGV[4]
local ids
if session == '' then
  ids = ids_of_entries(redis.call('ZRANGE', order, offset, offset + count - 1))
else
  local low, high = session_range(session)
  local size = redis.call('ZLEXCOUNT', sessions, low, high)
  if offset >= size then return {} end
  local start = redis.call('ZLEXCOUNT', sessions, '-', '(' .. session .. ':') + offset
  local stop = start + math.min(count, size - offset) - 1
  ids = ids_of(redis.call('ZRANGE', sessions, start, stop))
end
if #ids == 0 then return {} end
expire_keys(ttl_ms)
return call_chunked('HMGET', docs, ids)
""",
    # ARGV: ttl, terms... -> {doc count, total length, then the older and the newest
    # postings of each term}. A search
    # reads the user's index, so it keeps the user's data alive like any read.
    "postings": _PRELUDE
    + """
local stats = redis.call('HMGET', meta, 'docs', 'length')
if not stats[1] then return {0, 0} end
local found = {stats[1], stats[2]}
for i = 2, #ARGV do
  found[#found + 1] = redis.call('HGET', terms, ARGV[i]) or ''
  found[#found + 1] = redis.call('HGET', terms, ARGV[i] .. '\t') or ''
end
expire_keys(tonumber(ARGV[1]))
return found
""",
    # ARGV: radius, doc ids... -> one string per memory (few reply elements parse
    # faster): "<neighbour ids, comma-separated>\n<index entry>" for each existing id
    # asked for, then "-\n<index entry>" for each neighbour, whose entry the ranking
    # reads next.
    "neighbours": _PRELUDE
    + """
local radius, found, asked, near_ids = tonumber(ARGV[1]), {}, {}, {}
for i = 2, #ARGV do asked[ARGV[i]] = true end
local entries = entries_of(asked)
for i = 2, #ARGV do
  local raw = entries[ARGV[i]]
  if raw then
    local session, position = string.match(raw, '^%d+\\t%d+\\t([^\\t]*)\\t(%d+)\\t')
    position = tonumber(position)
    local low = '[' .. session .. ':' .. string.format('%012d', math.max(position - radius, 0))
    local high = '(' .. session .. ':' .. string.format('%012d', position + radius + 1)
    local near = {}
    for _, id in ipairs(ids_of(redis.call('ZRANGEBYLEX', sessions, low, high))) do
      if id ~= ARGV[i] then
        near[#near + 1] = id
        if not asked[id] then near_ids[id] = true end
      end
    end
    found[#found + 1] = table.concat(near, ',') .. '\\n' .. raw
  end
end
for _, raw in pairs(entries_of(near_ids)) do found[#found + 1] = '-\\n' .. raw end
return found
""",
    # ARGV: the epoch, removed count and next_id of the caller's cached vectors ('', '',
    # 0 for none) -> {'none'} for a user without data; {'full', epoch, removed, next_id,
    # vectors as id/vector pairs, vocabulary as term/vector pairs} when memories were
    # removed or the data was made anew; else {'delta', epoch, removed, next_id, id /
    # vector ('' for none) / terms of each memory added since}.
    "vector_state": _PRELUDE
    + """
local state = redis.call('HMGET', meta, 'epoch', 'removed', 'next_id')
if not state[3] then return {'none'} end
local epoch, removed, next_id = state[1] or '', state[2] or '0', state[3]
if epoch == '' or epoch ~= ARGV[1] or removed ~= ARGV[2]
    or tonumber(next_id) < tonumber(ARGV[3]) then
  return {'full', epoch, removed, next_id, redis.call('HGETALL', vectors),
    redis.call('HGETALL', vocab)}
end
local added = {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', order, '(' .. ARGV[3], '+inf')) do
  local id, held = string.match(entry, '^(%d+)\\t%d+\\t[^\\t]*\\t%d+\\t([^\\t]*)\\t')
  if id then
    added[#added + 1] = id
    added[#added + 1] = redis.call('HGET', vectors, id) or ''
    added[#added + 1] = held
  end
end
return {'delta', epoch, removed, next_id, added}
""",
    # ARGV: terms... -> those without a vocabulary vector.
    "new_terms": _PRELUDE
    + """
local found = {}
for i = 1, #ARGV do
  if redis.call('HEXISTS', vocab, ARGV[i]) == 0 then found[#found + 1] = ARGV[i] end
end
return found
""",
    # ARGV: doc ids... -> the index entry of each that exists, in any order.
    "entries": _PRELUDE
    + """
local wanted, found = {}, {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
for _, entry in pairs(entries_of(wanted)) do found[#found + 1] = entry end
return found
""",
}


def _encode_vector(vector: Any) -> str:
    return base64.b64encode(pack_vector(vector)).decode("ascii")


def _stored_json(message: Message) -> str:
    """The stored form of a message: its JSON without the fields left at their defaults.

    Reading it back with ``Message.model_validate_json`` gives an equal message. The
    ``type`` of content parts is kept although it is a default, because it tells which
    kind of part to rebuild. Dropping the defaults halves the size of a typical message,
    which matters here because the index already costs about as much again.
    """
    data = message.model_dump(mode="json", exclude_defaults=True)
    for part, dumped in zip(message.content or (), data.get("content") or (), strict=True):
        dumped["type"] = part.type
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _session_id(encoded: str) -> str:
    return decode_id(encoded)


def _decode_entry(raw: bytes | str) -> DocInfo:
    """The :class:`DocInfo` in a memory's index entry (its member of the order zset)."""
    entry = text(raw)
    try:
        doc_id, length, session, position, _, created_at, metadata = entry.split("\t", 6)
        return DocInfo(
            int(doc_id),
            int(length),
            _session_id(session),
            float(created_at),
            json.loads(metadata) if metadata else None,
            position=int(position),
        )
    except ValueError as exc:
        doc = entry.split("\t", 1)[0][:20]
        raise CorruptDataError(f"the index entry of memory {doc!r} cannot be decoded") from exc


def _ascii(value: bytes | str) -> bytes:
    """A Redis reply holding ASCII text as bytes, whether or not the client decodes."""
    return value if isinstance(value, bytes) else value.encode("ascii")


def _decode_message(doc_id: int | str, raw: bytes | str) -> Message:
    try:
        return Message.model_validate_json(raw)
    except ValidationError as exc:
        raise CorruptDataError(
            f"memory {doc_id} cannot be decoded: {exc.errors()[0]['msg']}"
        ) from exc


_MAX_TERM_COUNT = 0xFFFF
# A posting is 8 base64 digits: 6 bytes, whose first 30 bits are the doc id and last 18
# the count. Read as a 4-byte and a 2-byte big-endian int: (id << 2 | count >> 16, count).
_POSTING = struct.Struct(">IH")


class _Postings(Mapping[int, int]):
    """One term's postings as stored: fixed-width base64, ascending doc ids.

    Decoded from base64 in one call, then read lazily: the ranking reads only the length
    and some lookups of a common term's postings, so those cost O(log n) each instead of
    unpacking every posting.
    """

    def __init__(self, raw: bytes) -> None:
        if len(raw) % 8:
            raise ValueError("postings of the wrong length")
        self._packed = base64.b64decode(raw, validate=True)
        self._size = len(self._packed) // _POSTING.size
        self._heads: array[int] | None = None

    def _sorted_heads(self) -> array[int]:
        """The first 4 bytes of every posting as ints (doc id << 2 | count >> 16), which
        sort as the doc ids do; gathered by slicing, without a Python loop."""
        if self._heads is None:
            width, packed = _POSTING.size, self._packed
            gathered = bytearray(4 * self._size)
            for byte in range(4):
                gathered[byte::4] = packed[byte::width]
            # "I" is a C unsigned int: 4 bytes on every platform CPython supports.
            heads = array("I", bytes(gathered))
            if sys.byteorder == "little":
                heads.byteswap()
            self._heads = heads
        return self._heads

    def _find(self, doc_id: object) -> int | None:
        if not isinstance(doc_id, int) or not 0 <= doc_id < 1 << 30:
            return None
        heads = self._sorted_heads()
        at = bisect.bisect_left(heads, doc_id << 2)
        if at < self._size and heads[at] >> 2 == doc_id:
            first, rest = _POSTING.unpack_from(self._packed, at * _POSTING.size)
            return int((first & 3) << 16 | rest)
        return None

    def __getitem__(self, doc_id: object) -> int:
        count = self._find(doc_id)
        if count is None:
            raise KeyError(doc_id)
        return count

    # Without the exception Mapping's versions go through.
    def __contains__(self, doc_id: object) -> bool:
        return self._find(doc_id) is not None

    def get(self, doc_id: object, default: Any = None) -> Any:
        count = self._find(doc_id)
        return default if count is None else count

    def __iter__(self) -> Iterator[int]:
        return (high >> 2 for high, _ in _POSTING.iter_unpack(self._packed))

    def __len__(self) -> int:
        return self._size

    def items(self) -> ItemsView[int, int]:
        return _PostingItems(self)

    def unpacked(self) -> Iterator[tuple[int, int]]:
        """Every (doc id, count), in one pass rather than a search per posting."""
        for high, rest in _POSTING.iter_unpack(self._packed):
            yield high >> 2, (high & 3) << 16 | rest


class _PostingItems(ItemsView[int, int]):
    _mapping: _Postings

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return self._mapping.unpacked()


class _UserIndexView:
    """The ranking's view of one user's index in Redis (``IndexView``).

    Postings of all query terms and the corpus counts come in one script call; the
    neighbour lookup also returns each memory's index entry, which later serves
    ``documents`` without another round trip. Lives for one search.
    """

    def __init__(self, service: RedisMemoryService, keys: list[str]) -> None:
        self._service = service
        self._keys = keys
        self._stats = CorpusStats(0, 0)
        self._infos: dict[int, DocInfo] = {}
        self._near: dict[int, list[int]] = {}
        self._vectors: _VectorSnapshot | None = None

    async def corpus_stats(self) -> CorpusStats:
        return self._stats

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        raw = await self._service.run_script(
            "search memories", "postings", self._keys, [self._service._ttl_ms, *terms]
        )
        try:
            self._stats = CorpusStats(int(raw[0]), int(raw[1]))
            if len(raw) == 2:
                return {}
            found = {}
            for position, term in enumerate(terms):
                older, newest = raw[2 + 2 * position], raw[3 + 2 * position]
                if older or newest:
                    found[term] = _Postings(_ascii(older) + _ascii(newest))
            return found
        except ValueError as exc:
            raise CorruptDataError("the search index of a user cannot be decoded") from exc

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        wanted = list(doc_ids)
        missing = [doc_id for doc_id in wanted if doc_id not in self._infos]
        if missing:
            raw = await self._service.run_script("search memories", "entries", self._keys, missing)
            for entry in raw:
                info = _decode_entry(entry)
                self._infos[info.doc_id] = info
        return {doc_id: self._infos[doc_id] for doc_id in wanted if doc_id in self._infos}

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        wanted = list(doc_ids)
        missing = [doc_id for doc_id in wanted if doc_id not in self._near]
        if missing:
            raw = await self._service.run_script(
                "search memories", "neighbours", self._keys, [radius, *missing]
            )
            for entry in raw:
                near, index_entry = text(entry).split("\n", 1)
                info = _decode_entry(index_entry)
                self._infos.setdefault(info.doc_id, info)
                if near != "-":
                    self._near[info.doc_id] = [int(value) for value in near.split(",") if value]
        return {doc_id: self._near[doc_id] for doc_id in wanted if doc_id in self._near}

    async def vectors(self) -> StoredVectors:
        return (await self._vector_snapshot()).vectors

    async def term_vectors(self) -> TermVectors:
        return (await self._vector_snapshot()).terms

    async def _vector_snapshot(self) -> _VectorSnapshot:
        if self._vectors is None:
            self._vectors = await self._service._vector_snapshot(self._keys)
        return self._vectors


@dataclass(frozen=True, slots=True)
class _VectorSnapshot:
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


def _decode_vector(value: bytes | str) -> Any:
    from agentmem.search.embeddings import unpack_vector

    try:
        return unpack_vector(base64.b64decode(value, validate=True))
    except ValueError as exc:
        raise CorruptDataError("a stored vector cannot be decoded") from exc


def _pairs(flat: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """(field, decoded vector) pairs of a flat HGETALL reply of a vector hash."""
    for at in range(0, len(flat), 2):
        yield text(flat[at]), _decode_vector(flat[at + 1])


def _full_snapshot(epoch: str, removed: str, next_id: int, reply: Sequence[Any]) -> _VectorSnapshot:
    from agentmem.search.embeddings import StoredVectors, TermVectors

    vectors = sorted((int(doc_id), vector) for doc_id, vector in _pairs(reply[0]))
    return _VectorSnapshot(
        epoch,
        removed,
        next_id,
        StoredVectors.from_pairs(vectors),
        TermVectors.from_pairs(_pairs(reply[1])),
    )


class RedisMemoryService(RedisServiceBase, MemoryService):
    """Memories in Redis, searchable, shared by any number of processes.

    The constructor takes AgentScope Runtime 1.0's arguments and does not connect;
    ``start()`` creates the client (or takes ``redis_client``) and any use before it
    raises :class:`agentmem.errors.ServiceNotStartedError`.

    - ``redis_url``: ``redis://``, ``rediss://`` or ``unix://``; ``redis+cluster://host:port``
      (or ``cluster=True``) connects as a Redis Cluster client.
    - ``redis_client``: a ``redis.asyncio.Redis`` or ``RedisCluster`` to use instead; it
      is borrowed and never closed by the service. A client built from the URL is owned
      and closed by ``stop()``.
    - ``max_connections`` (default 50): the size of the pool; callers beyond it wait for a
      connection instead of failing.
    - ``ttl_seconds`` (default None: never): when set, all of a user's memories and
      index expire together, ``ttl_seconds`` after the user's last write or read
      (listing or search). AgentScope Runtime 1.0 defaulted to 3600, which made
      long-term memory forget after an hour; pass ``ttl_seconds=3600`` to keep that.
    - ``max_messages_per_session``: keep only the newest memories of each session; older
      ones leave the index in the same atomic step.
    - ``key_prefix`` (default ``"agentmem"``): the namespace of every key, so several
      applications (or tests) can share one Redis.
    - ``embedder`` and ``ranking``: as for
      :class:`~agentmem.services.memory.in_memory_memory_service.InMemoryMemoryService`.
    - ``vector_cache_users`` (default 16): with an embedder, the memory and term vectors
      of this many users (the most recently searched) stay in the process between
      searches; a search then reads only what other writers added since, in the same
      round trip that checks for changes (a removal reloads the user's vectors). A cached
      user costs 4 bytes per dimension per memory and per distinct term (about 1.5 KB
      each with all-MiniLM-L6-v2's 384). 0 reads every vector on every search.

    Each ``add_memory`` is one Lua script that stores the messages and updates the user's
    postings, counters and session index together, so a search never sees half a write
    and the cost does not grow with the stored history. Search ranks with
    :mod:`agentmem.search.ranking` over postings read for the query's terms only, so it
    returns what the in-memory backend returns for the same data. A page of
    ``list_memory`` costs O(log n + page size). Data that cannot be decoded (planted or
    damaged) raises :class:`agentmem.errors.CorruptDataError` when read; nothing else is
    affected. Redis failures raise :class:`agentmem.errors.BackendError`.
    """

    scripts = _SCRIPTS

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        redis_client: RedisClient | None = None,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        max_connections: int | None = 50,
        retry_on_timeout: bool = True,
        ttl_seconds: int | None = None,
        max_messages_per_session: int | None = None,
        health_check_interval: float | None = 30.0,
        socket_keepalive: bool = True,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        cluster: bool | None = None,
        embedder: Embedder | None = None,
        ranking: RankingParameters | None = None,
        vector_cache_users: int = 16,
    ) -> None:
        super().__init__(
            redis_url,
            redis_client,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            retry_on_timeout=retry_on_timeout,
            ttl_seconds=ttl_seconds,
            health_check_interval=health_check_interval,
            socket_keepalive=socket_keepalive,
            key_prefix=key_prefix,
            cluster=cluster,
        )
        self._max_messages = (
            check_positive(max_messages_per_session, "max_messages_per_session", optional=True) or 0
        )
        self._embedder = embedder
        self._ranking = ranking or RankingParameters()
        if vector_cache_users < 0:
            raise ValueError(f"vector_cache_users must be >= 0, got {vector_cache_users}")
        self._cache_users = vector_cache_users
        # Keyed by the user's meta key; the most recently searched user last.
        self._vector_cache: OrderedDict[str, _VectorSnapshot] = OrderedDict()

    def _keys(self, user_id: str) -> list[str]:
        return self.keys.user(user_id, *_KEY_NAMES)

    async def _vector_snapshot(self, keys: list[str]) -> _VectorSnapshot:
        """The user's vectors now: the cached snapshot brought up to date, or read anew."""
        from agentmem.search.embeddings import StoredVectors, TermVectors

        cached = self._vector_cache.get(keys[0])
        known = [cached.epoch, cached.removed, cached.next_id] if cached else ["", "", 0]
        reply = await self.run_script("search memories", "vector_state", keys, known)
        try:
            mode = text(reply[0])
            if mode == "none":
                self._vector_cache.pop(keys[0], None)
                empty = StoredVectors.from_pairs([])
                return _VectorSnapshot("", "", 0, empty, TermVectors.from_pairs([]))
            epoch, removed, next_id = text(reply[1]), text(reply[2]), int(reply[3])
        except (IndexError, ValueError) as exc:
            raise CorruptDataError("the vector state of a user cannot be decoded") from exc
        if mode == "full" or cached is None:
            snapshot = _full_snapshot(epoch, removed, next_id, reply[4:])
        else:
            snapshot = await self._updated(cached, epoch, removed, next_id, reply[4], keys)
        if epoch and self._cache_users:
            # Data written before epochs existed has none: it is read anew every time.
            self._vector_cache[keys[0]] = snapshot
            self._vector_cache.move_to_end(keys[0])
            while len(self._vector_cache) > self._cache_users:
                self._vector_cache.popitem(last=False)
        return snapshot

    async def _updated(
        self,
        cached: _VectorSnapshot,
        epoch: str,
        removed: str,
        next_id: int,
        added: Sequence[Any],
        keys: list[str],
    ) -> _VectorSnapshot:
        """``cached`` with the memories added since (id, vector, terms triples)."""
        if not added and (epoch, removed, next_id) == (
            cached.epoch,
            cached.removed,
            cached.next_id,
        ):
            return cached
        vectors: list[tuple[int, Any]] = []
        unknown: set[str] = set()
        for at in range(0, len(added), 3):
            if added[at + 1]:
                vectors.append((int(added[at]), _decode_vector(added[at + 1])))
            unknown.update(text(added[at + 2]).split())
        unknown = {term for term in unknown if term not in cached.terms}
        terms: list[tuple[str, Any]] = []
        if unknown:
            wanted = sorted(unknown)
            async with self.redis("search memories") as client:
                found = await client.hmget(keys[6], wanted)
            # A term without a vector came from a memory stored without an embedder.
            terms = [
                (term, _decode_vector(value))
                for term, value in zip(wanted, found, strict=True)
                if value is not None
            ]
        return _VectorSnapshot(
            epoch,
            removed,
            next_id,
            cached.vectors.extended(vectors),
            cached.terms.extended(terms),
        )

    async def _vectors(self, keys: list[str], texts: list[str]) -> tuple[list[str], list[str]]:
        """Base64 of each text's packed unit vector ('' without embedder or text), and
        term/vector pairs for the index terms the user has no vector of yet."""
        if self._embedder is None:
            return [""] * len(texts), []
        from agentmem.search.embeddings import embed_memories

        words: dict[str, str] = {}
        for value in texts:
            for term, word in index_words(value).items():
                words.setdefault(term, word)
        new = await self.run_script("add memories", "new_terms", keys, list(words)) if words else []
        vectors, term_vectors = await embed_memories(
            self._embedder, texts, {text(term): words[text(term)] for term in new}
        )
        vocabulary: list[str] = []
        for term, vector in term_vectors.items():
            vocabulary += [term, _encode_vector(vector)]
        return ["" if vector is None else _encode_vector(vector) for vector in vectors], vocabulary

    @override
    async def add_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        check_id(user_id, "user_id")
        session = check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID
        parsed = to_messages(messages)
        if not parsed:
            return
        keys = self._keys(user_id)
        texts = [message.searchable_text() for message in parsed]
        # Embedded before anything is stored, so a failing embedder stores nothing.
        vectors, vocabulary = await self._vectors(keys, texts)
        now = time.time()
        args: list[Any] = [
            self._ttl_ms,
            self._max_messages,
            encode_id(session),
            len(parsed),
            uuid.uuid4().hex,
        ]
        for message, searchable, vector in zip(parsed, texts, vectors, strict=True):
            counts = term_counts(searchable)
            metadata = message.metadata
            tail = repr(now) + "\t" + ("" if metadata is None else json.dumps(metadata))
            args += [_stored_json(message), tail, sum(counts.values()), vector, len(counts)]
            for term, count in counts.items():
                # A term is counted at most 65,535 times per memory.
                args += [term, min(count, _MAX_TERM_COUNT)]
        await self.run_script("add memories", "add", keys, args + vocabulary)

    @override
    async def search_memory_hits(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any] | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        check_id(user_id, "user_id")
        parsed_filters = parse_search_filters(filters)
        query = query_text(messages)
        if not query:
            return []
        keys = self._keys(user_id)
        view = _UserIndexView(self, keys)
        scored: list[ScoredDoc]
        if self._embedder is None:
            scored = await lexical_search(view, query, parsed_filters, self._ranking)
        else:
            from agentmem.search.embeddings import embed_query

            query_vector, word_vectors = await embed_query(self._embedder, query)
            scored = await hybrid_search(
                view, query, query_vector, parsed_filters, self._ranking, word_vectors
            )
        if not scored:
            return []
        infos = await view.documents(hit.doc_id for hit in scored)
        async with self.redis("search memories") as client:
            raw = await client.hmget(keys[1], [hit.doc_id for hit in scored])
        hits = []
        for hit, value in zip(scored, raw, strict=True):
            info = infos.get(hit.doc_id)
            if value is None or info is None:
                # Deleted between reading the index and reading the message.
                continue
            hits.append(
                MemoryHit(
                    message=_decode_message(hit.doc_id, value),
                    score=hit.score,
                    session_id=info.session_id,
                    created_at=datetime.fromtimestamp(info.created_at, UTC),
                )
            )
        return hits

    @override
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        session = "" if page.session_id is None else encode_id(page.session_id)
        raw = await self.run_script(
            "list memories",
            "page",
            self._keys(user_id),
            [self._ttl_ms, page.offset, page.page_size, session],
        )
        return [
            _decode_message(position, value)
            for position, value in enumerate(raw, start=page.offset)
            if value is not None
        ]

    @override
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        keys = self._keys(user_id)
        if session_id is None:
            async with self.redis("delete memories") as client:
                await client.unlink(*keys)
            return
        await self.run_script("delete memories", "delete_session", keys, [encode_id(session_id)])
