"""Memories in Redis, with the search index kept beside them and updated atomically."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from typing_extensions import Unpack, override

from agentmem._validation import ListFilters
from agentmem.errors import CorruptDataError, InvalidArgumentError
from agentmem.schemas.agent_schemas import Message
from agentmem.search.analysis import index_words, term_counts
from agentmem.search.embeddings import Embedder, embed_memories, embed_query
from agentmem.search.ranking import (
    RankingParameters,
    ScoredDoc,
    SearchFilters,
    hybrid_search,
    lexical_search,
)
from agentmem.services._redis import (
    AGENTSCOPE_PARAMETERS,
    RedisConnection,
    RedisOptions,
    RedisServiceBase,
    decode_id,
    encode_id,
    text,
)
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService
from agentmem.services.memory.redis.codec import (
    MAX_TERM_COUNT,
    decode_entry,
    decode_message,
    encode_vector,
    entry_tail,
    stored_json,
)
from agentmem.services.memory.redis.index_view import UserIndexView
from agentmem.services.memory.redis.keys import MEMORY_KIND, UserKeys
from agentmem.services.memory.redis.scripts import SCRIPTS
from agentmem.services.memory.redis.search_cache import DEFAULT_USER_BYTES, SearchCache
from agentmem.services.memory.redis.vector_cache import VectorCache
from agentmem.services.memory.redis.writes import MemoryWriter, NewMemory

__all__ = ["RedisMemoryService"]

# Reads of a page whose memories are deleted meanwhile, before a missing message counts
# as damaged data.
_PAGE_READS = 3


class RedisMemoryService(RedisServiceBase, MemoryService):
    """Memories in Redis, searchable, shared by any number of processes.

    Connection: ``connection=RedisConnection(...)`` (see
    :class:`agentmem.services._redis.RedisConnection`: URL or borrowed client, pool,
    timeouts, cluster, key prefix), one value that several services can share; or
    AgentScope Runtime 1.0's arguments, positional (``redis_url, redis_client,
    socket_timeout, socket_connect_timeout, max_connections, retry_on_timeout,
    ttl_seconds, max_messages_per_session, health_check_interval, socket_keepalive``)
    or by keyword, plus ``key_prefix`` and ``cluster``. The constructor does not
    connect; ``start()`` creates the client and any use before it raises
    :class:`agentmem.errors.ServiceNotStartedError`.

    - ``ttl_seconds`` (default None: never): when set, all of a user's memories and
      index expire together, ``ttl_seconds`` after the user's last write or read
      (listing, search, listing sessions). AgentScope Runtime 1.0 defaulted to 3600,
      which made long-term memory forget after an hour; pass ``ttl_seconds=3600`` to
      keep that.
    - ``max_messages_per_session``: keep only the newest memories of each session; older
      ones leave the index in the same atomic step.
    - ``embedder`` and ``ranking``: as for
      :class:`~agentmem.services.memory.in_memory_memory_service.InMemoryMemoryService`.
    - ``vector_cache_users`` (default 16): with an embedder, the memory and term vectors
      of this many users (the most recently searched) stay in the process between
      searches; a search then reads only what other writers added since, in the same
      round trip that checks for changes (a removal reloads the user's vectors). A cached
      user costs 4 bytes per dimension per memory and per distinct term (about 1.5 KB
      each with all-MiniLM-L6-v2's 384). 0 reads every vector on every search.
    - ``search_cache_users`` (default 16) and ``search_cache_user_bytes`` (default
      :data:`~agentmem.services.memory.redis.search_cache.DEFAULT_USER_BYTES`, 8 MiB):
      what searches read of this many users' indexes (postings, index entries,
      neighbour ids, messages) stays in the process, at most about that many bytes per
      user; the least recently searched user leaves first, and within a user what
      searches have not read for longest (see
      :mod:`~agentmem.services.memory.redis.search_cache`). A search still asks Redis
      first, in the round trip that reads its postings, whether anything changed, so it
      sees every write made before it, by any process: after additions it reads their
      postings and keeps the rest; a removal (or the user's data made anew) empties the
      user's cache. 0 keeps nothing between searches.

    An ``add_memory`` stores the messages and updates the user's postings, counters and
    session indexes in one Lua script, or, for a larger batch than one script takes
    (:data:`~agentmem.services.memory.redis.writes.STEP_TERMS` index terms,
    :data:`~agentmem.services.memory.redis.writes.STEP_BYTES` bytes), in steps of that
    size made visible together by a last one: a search never sees half a write,
    no script keeps Redis busy for more than a few ms, and the cost does not grow with
    the stored history. A message id is stored once per session, so a retried add (by
    redis-py after a timeout, or by the caller after an error) stores nothing twice; a
    batch that repeats an id stores its first message of that id. Search ranks with
    :mod:`agentmem.search.ranking` over postings read for the query's terms only, so it
    returns what the in-memory backend returns for the same data; what it reads stays in
    the process for the next searches (``search_cache_users`` above). A page of
    ``list_memory`` costs O(log n + page size). ``clear_all_memory`` is an admin
    operation: it scans the key prefix on every master node (SCAN, never KEYS) and is
    not atomic with concurrent writes. Data that cannot be decoded (planted or damaged)
    raises :class:`agentmem.errors.CorruptDataError` when read; nothing else is
    affected. Redis failures raise :class:`agentmem.errors.BackendError`.
    """

    scripts = SCRIPTS
    capabilities = MemoryService.capabilities | {Capability.IDEMPOTENT_WRITES}
    agentscope_parameters = AGENTSCOPE_PARAMETERS

    def __init__(
        self,
        *args: Any,
        connection: RedisConnection | None = None,
        ttl_seconds: int | None = None,
        max_messages_per_session: int | None = None,
        embedder: Embedder | None = None,
        ranking: RankingParameters | None = None,
        vector_cache_users: int = 16,
        search_cache_users: int = 16,
        search_cache_user_bytes: int = DEFAULT_USER_BYTES,
        **options: Unpack[RedisOptions],
    ) -> None:
        super().__init__(
            args,
            connection,
            options,
            ttl_seconds=ttl_seconds,
            max_messages_per_session=max_messages_per_session,
        )
        self._embedder = embedder
        self._ranking = ranking or RankingParameters()
        for name, value in (
            ("vector_cache_users", vector_cache_users),
            ("search_cache_users", search_cache_users),
            ("search_cache_user_bytes", search_cache_user_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgumentError(name, "must be an int")
            if value < 0:
                raise InvalidArgumentError(name, f"must be >= 0, got {value}")
        self.vector_cache = VectorCache(self, vector_cache_users)
        self.search_cache = SearchCache(search_cache_users, search_cache_user_bytes)

    def user_keys(self, user_id: str) -> UserKeys:
        """The Redis keys of ``user_id``'s memories."""
        return UserKeys.of(self.keys, user_id)

    async def _vectors(self, keys: UserKeys, texts: list[str]) -> tuple[list[str], list[str]]:
        """Base64 of each text's packed unit vector ('' without embedder or text), and
        term/vector pairs for the index terms the user has no vector of yet."""
        if self._embedder is None:
            return [""] * len(texts), []
        words: dict[str, str] = {}
        for value in texts:
            for term, word in index_words(value).items():
                words.setdefault(term, word)
        new = await self.run_script("new_terms", keys.all(), list(words)) if words else []
        vectors, term_vectors = await embed_memories(
            self._embedder, texts, {text(term): words[text(term)] for term in new}
        )
        vocabulary: list[str] = []
        for term, vector in term_vectors.items():
            vocabulary += [term, encode_vector(vector)]
        return ["" if vector is None else encode_vector(vector) for vector in vectors], vocabulary

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        keys = self.user_keys(user_id)
        # A message id is stored once per session: a repeated one is the same message.
        first: dict[str, Message] = {}
        for message in messages:
            first.setdefault(message.id, message)
        messages = list(first.values())
        texts = [message.searchable_text() for message in messages]
        # Embedded before anything is stored, so a failing embedder stores nothing.
        vectors, vocabulary = await self._vectors(keys, texts)
        memories = []
        for message, searchable, vector in zip(messages, texts, vectors, strict=True):
            counts = term_counts(searchable)
            memories.append(
                NewMemory(
                    message_id=message.id,
                    stored=stored_json(message),
                    tail=entry_tail(created_at, message.metadata),
                    length=sum(counts.values()),
                    vector=vector,
                    counts=[(term, min(count, MAX_TERM_COUNT)) for term, count in counts.items()],
                )
            )
        await MemoryWriter(self, keys).add(encode_id(session_id), memories, vocabulary)

    @override
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        keys = self.user_keys(user_id)
        view = UserIndexView(self, keys, self.search_cache, self.vector_cache)
        scored: list[ScoredDoc]
        if self._embedder is None:
            scored = await lexical_search(view, query, filters, self._ranking)
        else:
            query_vector, word_vectors = await embed_query(self._embedder, query)
            scored = await hybrid_search(
                view, query, query_vector, filters, self._ranking, word_vectors
            )
        if not scored:
            return []
        doc_ids = [hit.doc_id for hit in scored]
        infos = await view.documents(doc_ids)
        messages = await view.messages(doc_ids)
        hits = []
        for hit in scored:
            info, message = infos.get(hit.doc_id), messages.get(hit.doc_id)
            if info is None or message is None:
                # Deleted between reading the index and reading the message.
                continue
            hits.append(
                MemoryHit(
                    message=message,
                    score=hit.score,
                    session_id=info.session_id,
                    created_at=datetime.fromtimestamp(info.created_at, UTC),
                )
            )
        return hits

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        session = "" if page.session_id is None else encode_id(page.session_id)
        keys = self.user_keys(user_id)
        # A memory deleted between reading the page and reading its message makes the
        # page be read again; one still without a message then is damaged data.
        for _ in range(_PAGE_READS):
            infos = [
                decode_entry(entry)
                for entry in await self.run_script(
                    "page", keys.all(), [self.ttl_ms, page.offset, page.page_size, session]
                )
            ]
            if not infos:
                return []
            async with self.redis() as client:
                raw = await client.hmget(keys.docs, [info.doc_id for info in infos])
            found = [value for value in raw if value is not None]
            if len(found) == len(infos):
                break
        else:
            missing = [info.doc_id for info, value in zip(infos, raw, strict=True) if value is None]
            raise CorruptDataError(f"memory {missing[0]} is indexed but has no message")
        return [
            MemoryRecord(
                message=decode_message(info.doc_id, value),
                session_id=info.session_id,
                created_at=datetime.fromtimestamp(info.created_at, UTC),
            )
            for info, value in zip(infos, found, strict=True)
        ]

    @override
    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        raw = await self.run_script("session_ids", self.user_keys(user_id).all(), [self.ttl_ms])
        return [decode_id(text(value)) for value in raw]

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        keys = self.user_keys(user_id)
        if session_id is None:
            async with self.redis() as client:
                await client.unlink(*keys.all())
            return
        await MemoryWriter(self, keys).delete_session(encode_id(session_id))

    @override
    async def _clear_all(self) -> None:
        await self.unlink_matching(self.keys.pattern(MEMORY_KIND))
