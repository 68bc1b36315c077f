"""Memories in a SQLite file, with the search index in tables beside them."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, OrderedDict
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import override

from agentmem._validation import ListFilters
from agentmem.errors import InvalidArgumentError
from agentmem.schemas.agent_schemas import Message
from agentmem.search.analysis import new_index_words, term_counts
from agentmem.search.embeddings import (
    Embedder,
    StoredVectors,
    TermVectors,
    embed_memories,
    embed_query,
    pack_vector,
)
from agentmem.search.ranking import (
    CorpusStats,
    DocInfo,
    RankingParameters,
    ScoredDoc,
    SearchFilters,
    hybrid_search,
    lexical_search,
)
from agentmem.services._sqlite import (
    DEFAULT_PATH,
    SQLiteServiceBase,
    Synchronous,
    decode_message,
    json_list,
    read_transaction,
    write_transaction,
)
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SQLiteMemoryService"]

T = TypeVar("T")

_USER = "SELECT user_key, doc_count, total_length, removals FROM memory_users WHERE user_id = ?"
_USER_KEY = "(SELECT user_key FROM memory_users WHERE user_id = ?)"
# The values of one JSON array parameter (see json_list).
_VALUES = "(SELECT value FROM json_each(?))"
# What a MemoryRecord needs, for the rows of a query on memory_docs as ``d``.
_RECORD = (
    "SELECT d.doc_id, d.message, s.session_id, d.created_at FROM memory_docs AS d "
    "JOIN memory_sessions AS s ON s.session_key = d.session_key "
)
# What a DocInfo needs, for the rows of a query on memory_docs as ``n``.
_INFO = "n.doc_id, n.length, s.session_id, n.position, n.created_at, n.metadata"


def _complete(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, run without an event loop.

    The ranking is async so that a view may await its storage; the view of this module
    reads the file synchronously, in the connection's thread, so the whole search runs
    there, in one read transaction, and the ranking never waits on anything.
    """
    try:
        coroutine.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    coroutine.close()
    raise RuntimeError("the ranking waited on something other than the database")


def _not_cached(doc_ids: Iterable[int], cache: Mapping[int, object]) -> tuple[list[int], list[int]]:
    """The ids asked for, and those of them ``cache`` does not hold yet."""
    wanted = list(doc_ids)
    return wanted, [doc_id for doc_id in wanted if doc_id not in cache]


def _info(row: Sequence[Any]) -> DocInfo:
    doc_id, length, session_id, position, created_at, metadata = row
    return DocInfo(
        doc_id,
        length,
        session_id,
        created_at,
        None if metadata is None else json.loads(metadata),
        position=position,
    )


@dataclass(frozen=True, slots=True)
class _User:
    """A user's row of ``memory_users``."""

    key: int
    doc_count: int
    total_length: int
    removals: int


def _user(connection: sqlite3.Connection, user_id: str) -> _User | None:
    row = connection.execute(_USER, (user_id,)).fetchone()
    return None if row is None else _User(*row)


@dataclass(slots=True)
class _CachedVectors:
    """A user's vectors as read up to memory ``last_doc``, valid while the user's key and
    removal count are those read."""

    user_key: int
    removals: int
    last_doc: int
    vectors: StoredVectors
    terms: TermVectors


class _VectorCache:
    """The vectors of the most recently searched users, kept between searches.

    Touched only in the connection's thread. A search reads only the memories and terms
    added since (their doc ids are above ``last_doc``, as ids are never reused); a
    removal bumps the user's removal count and a re-created user has a new key, and
    either makes the search read the user's vectors anew.
    """

    def __init__(self, users: int) -> None:
        self._users = users
        self._cached: OrderedDict[str, _CachedVectors] = OrderedDict()

    def get(self, connection: sqlite3.Connection, user_id: str, user: _User) -> _CachedVectors:
        cached = self._cached.pop(user_id, None)
        (last_doc,) = connection.execute(
            "SELECT max(doc_id) FROM memory_docs WHERE user_key = ?", (user.key,)
        ).fetchone()
        last_doc = last_doc or 0
        if cached is None or (cached.user_key, cached.removals) != (user.key, user.removals):
            cached = _CachedVectors(
                user.key,
                user.removals,
                last_doc,
                StoredVectors.from_pairs(_doc_vectors(connection, user.key, 0)),
                TermVectors.from_pairs(_term_vectors(connection, user.key, 0)),
            )
        elif last_doc > cached.last_doc:
            since = cached.last_doc
            cached.vectors = cached.vectors.extended(_doc_vectors(connection, user.key, since))
            cached.terms = cached.terms.extended(_term_vectors(connection, user.key, since))
            cached.last_doc = last_doc
        if self._users:
            self._cached[user_id] = cached
            while len(self._cached) > self._users:
                self._cached.popitem(last=False)
        return cached


def _doc_vectors(
    connection: sqlite3.Connection, user_key: int, since: int
) -> list[tuple[int, bytes]]:
    return connection.execute(
        "SELECT doc_id, vector FROM memory_docs WHERE user_key = ? AND doc_id > ? "
        "AND vector IS NOT NULL ORDER BY doc_id",
        (user_key, since),
    ).fetchall()


def _term_vectors(
    connection: sqlite3.Connection, user_key: int, since: int
) -> list[tuple[str, bytes]]:
    return connection.execute(
        "SELECT term, vector FROM memory_term_vectors WHERE user_key = ? AND doc_id > ?",
        (user_key, since),
    ).fetchall()


class _UserView:
    """One user's index in the file as :class:`agentmem.search.ranking.VectorIndexView`
    reads it, for one search inside one read transaction.

    The neighbour lookup also reads the :class:`DocInfo` of every memory it reaches,
    which then serves :meth:`documents` without another query.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        user_id: str,
        user: _User,
        vector_cache: _VectorCache,
    ) -> None:
        self._connection = connection
        self._user_id = user_id
        self._user = user
        self._vector_cache = vector_cache
        self._infos: dict[int, DocInfo] = {}
        self._near: dict[int, list[int]] = {}
        self._vectors: _CachedVectors | None = None

    async def corpus_stats(self) -> CorpusStats:
        return CorpusStats(self._user.doc_count, self._user.total_length)

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        found: dict[str, dict[int, int]] = {}
        rows = self._connection.execute(
            "SELECT term, doc_id, count FROM memory_postings "
            f"WHERE user_key = ? AND term IN {_VALUES}",
            (self._user.key, json_list(terms)),
        )
        for term, doc_id, count in rows:
            held = found.get(term)
            if held is None:
                held = found[term] = {}
            held[doc_id] = count
        # In the order of the query's terms: the ranking adds their scores in this order,
        # and floating-point sums depend on it.
        return {term: found[term] for term in terms if term in found}

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        wanted, missing = _not_cached(doc_ids, self._infos)
        if missing:
            rows = self._connection.execute(
                f"SELECT {_INFO} FROM memory_docs AS n "
                "JOIN memory_sessions AS s ON s.session_key = n.session_key "
                f"WHERE n.doc_id IN {_VALUES} AND n.user_key = ?",
                (json_list(missing), self._user.key),
            )
            for row in rows:
                self._infos[row[0]] = _info(row)
        return {doc_id: self._infos[doc_id] for doc_id in wanted if doc_id in self._infos}

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        wanted, missing = _not_cached(doc_ids, self._near)
        if missing:
            # Each memory meets itself at distance 0, which brings its own DocInfo.
            rows = self._connection.execute(
                f"SELECT m.doc_id, {_INFO} FROM memory_docs AS m "
                "JOIN memory_docs AS n ON n.session_key = m.session_key "
                "AND n.position BETWEEN m.position - ? AND m.position + ? "
                "JOIN memory_sessions AS s ON s.session_key = n.session_key "
                f"WHERE m.doc_id IN {_VALUES} AND m.user_key = ?",
                (radius, radius, json_list(missing), self._user.key),
            )
            for row in rows:
                doc_id, neighbour = row[0], row[1]
                near = self._near.setdefault(doc_id, [])
                if neighbour != doc_id:
                    near.append(neighbour)
                if neighbour not in self._infos:
                    self._infos[neighbour] = _info(row[1:])
        return {doc_id: self._near[doc_id] for doc_id in wanted if doc_id in self._near}

    async def vectors(self) -> StoredVectors:
        return self._snapshot().vectors

    async def term_vectors(self) -> TermVectors:
        return self._snapshot().terms

    def _snapshot(self) -> _CachedVectors:
        if self._vectors is None:
            self._vectors = self._vector_cache.get(self._connection, self._user_id, self._user)
        return self._vectors


def _record_fields(row: Sequence[Any], where: str) -> dict[str, Any]:
    """The fields of a :class:`MemoryRecord` from a row of ``_RECORD``."""
    doc_id, message, session_id, created_at = row
    return {
        "message": decode_message(message, f"memory {doc_id} in {where}"),
        "session_id": session_id,
        "created_at": datetime.fromtimestamp(created_at, UTC),
    }


class SQLiteMemoryService(SQLiteServiceBase, MemoryService):
    """Memories in a SQLite file: persistent, searchable, shared by processes, no server.

    ``path`` (default ``agentmem.db`` in the working directory), ``busy_timeout`` and
    ``synchronous`` as :class:`agentmem.services._sqlite.SQLiteServiceBase` says; the
    file may also hold the data of :class:`SQLiteSessionHistoryService` and
    :class:`SQLiteStateService`. ``embedder`` and ``ranking``: as for
    :class:`~agentmem.services.memory.in_memory_memory_service.InMemoryMemoryService`;
    vectors are stored in the file, so a file written with an embedder should be opened
    with the same one. ``vector_cache_users`` (default 16): with an embedder, the
    vectors of this many users (the most recently searched) stay in the process between
    searches, and a search reads only the memories added since; 0 reads every vector on
    every search.

    Each ``add_memory`` is one transaction that stores the messages and updates the
    user's postings and counters, so a search never sees half a write. Search ranks with
    :mod:`agentmem.search.ranking` over postings read for the query's terms only, in one
    read transaction: for the same data it returns exactly what the in-memory backend
    returns, scores included. Listing one session's memories costs O(log n + page
    size), listing all of a user's O(offset + page size). A stored message that cannot
    be decoded raises :class:`agentmem.errors.CorruptDataError` when read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        busy_timeout: float = 30.0,
        synchronous: Synchronous = "NORMAL",
        embedder: Embedder | None = None,
        ranking: RankingParameters | None = None,
        vector_cache_users: int = 16,
    ) -> None:
        super().__init__(path, busy_timeout=busy_timeout, synchronous=synchronous)
        if isinstance(vector_cache_users, bool) or not isinstance(vector_cache_users, int):
            raise InvalidArgumentError("vector_cache_users", "must be an int")
        if vector_cache_users < 0:
            raise InvalidArgumentError(
                "vector_cache_users", f"must be >= 0, got {vector_cache_users}"
            )
        self._embedder = embedder
        self._ranking = ranking or RankingParameters()
        self._vector_cache = _VectorCache(vector_cache_users)

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        vectors: Sequence[npt.NDArray[np.float32] | None] = [None] * len(messages)
        term_vectors: dict[str, npt.NDArray[np.float32]] = {}
        if self._embedder is not None:
            # Embedded before anything is stored, so a failing embedder stores nothing.
            texts = [message.searchable_text() for message in messages]
            words = new_index_words(texts)
            held = await self.run(lambda connection: _held_terms(connection, user_id, words))
            new_terms = {term: word for term, word in words.items() if term not in held}
            vectors, term_vectors = await embed_memories(self._embedder, texts, new_terms)
        await self.run(
            lambda connection: _insert(
                connection, user_id, session_id, messages, created_at, vectors, term_vectors
            )
        )

    @override
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        embedded = None if self._embedder is None else await embed_query(self._embedder, query)
        return await self.run(
            lambda connection: self._search(connection, user_id, query, filters, embedded)
        )

    def _search(
        self,
        connection: sqlite3.Connection,
        user_id: str,
        query: str,
        filters: SearchFilters,
        embedded: tuple[Any, dict[str, Any]] | None,
    ) -> list[MemoryHit]:
        with read_transaction(connection):
            user = _user(connection, user_id)
            if user is None:
                return []
            view = _UserView(connection, user_id, user, self._vector_cache)
            scored: list[ScoredDoc]
            if embedded is None:
                scored = _complete(lexical_search(view, query, filters, self._ranking))
            else:
                query_vector, word_vectors = embedded
                scored = _complete(
                    hybrid_search(view, query, query_vector, filters, self._ranking, word_vectors)
                )
            if not scored:
                return []
            rows = connection.execute(
                f"{_RECORD} WHERE d.doc_id IN {_VALUES}",
                (json_list(hit.doc_id for hit in scored),),
            ).fetchall()
        by_id = {row[0]: row for row in rows}
        return [
            MemoryHit(**_record_fields(by_id[hit.doc_id], self.path), score=hit.score)
            for hit in scored
        ]

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        if page.session_id is None:
            # The page's ids come from the user index alone: the rows skipped by the
            # offset are never read.
            sql = (
                f"{_RECORD} WHERE d.doc_id IN (SELECT doc_id FROM memory_docs "
                f"WHERE user_key = {_USER_KEY} ORDER BY doc_id LIMIT ? OFFSET ?) "
                "ORDER BY d.doc_id"
            )
            args: tuple[Any, ...] = (user_id, page.page_size, page.offset)
        else:
            # Positions in a session have no gaps: the page starts at its offset.
            sql = (
                f"{_RECORD} WHERE s.user_key = {_USER_KEY} AND s.session_id = ? "
                "AND d.position >= ? ORDER BY d.position LIMIT ?"
            )
            args = (user_id, page.session_id, page.offset, page.page_size)
        rows = await self.run(lambda connection: connection.execute(sql, args).fetchall())
        return [MemoryRecord(**_record_fields(row, self.path)) for row in rows]

    @override
    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        rows = await self.run(
            lambda connection: connection.execute(
                f"SELECT session_id FROM memory_sessions WHERE user_key = {_USER_KEY} "
                "ORDER BY session_key",
                (user_id,),
            ).fetchall()
        )
        return [session_id for (session_id,) in rows]

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        await self.run(lambda connection: _delete(connection, user_id, session_id))

    @override
    async def _clear_all(self) -> None:
        await self.run(_clear_all)


def _held_terms(connection: sqlite3.Connection, user_id: str, terms: Iterable[str]) -> set[str]:
    """Those of ``terms`` the user holds a vector of."""
    rows = connection.execute(
        f"SELECT term FROM memory_term_vectors WHERE user_key = {_USER_KEY} AND term IN {_VALUES}",
        (user_id, json_list(terms)),
    )
    return {term for (term,) in rows}


def _insert(
    connection: sqlite3.Connection,
    user_id: str,
    session_id: str,
    messages: Sequence[Message],
    created_at: float,
    vectors: Sequence[Any],
    term_vectors: Mapping[str, Any],
) -> None:
    """Store the memories and their postings, and term vectors the user lacks, in one
    transaction."""
    # Encoded and analysed before the write lock is taken, to hold it briefly.
    prepared = []
    for message, vector in zip(messages, vectors, strict=True):
        counts: Counter[str] = term_counts(message.searchable_text())
        prepared.append(
            (
                message.__pydantic_serializer__.to_json(message).decode(),
                None if message.metadata is None else json.dumps(message.metadata),
                counts,
                None if vector is None else pack_vector(vector),
            )
        )
    total_length = sum(sum(counts.values()) for _, _, counts, _ in prepared)
    with write_transaction(connection):
        (user_key,) = connection.execute(
            "INSERT INTO memory_users (user_id, doc_count, total_length, removals) "
            "VALUES (?, ?, ?, 0) ON CONFLICT (user_id) DO UPDATE SET "
            "doc_count = doc_count + excluded.doc_count, "
            "total_length = total_length + excluded.total_length RETURNING user_key",
            (user_id, len(prepared), total_length),
        ).fetchone()
        # The session's size after the write: its new memories come last.
        session_key, size = connection.execute(
            "INSERT INTO memory_sessions (user_key, session_id, size) VALUES (?, ?, ?) "
            "ON CONFLICT (user_key, session_id) DO UPDATE SET size = size + excluded.size "
            "RETURNING session_key, size",
            (user_key, session_id, len(prepared)),
        ).fetchone()
        postings: list[tuple[int, str, int, int]] = []
        first_doc = 0
        for position, (json_text, metadata, counts, vector) in enumerate(
            prepared, start=size - len(prepared)
        ):
            (doc_id,) = connection.execute(
                "INSERT INTO memory_docs (user_key, session_key, position, length, "
                "created_at, metadata, terms, message, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING doc_id",
                (
                    user_key,
                    session_key,
                    position,
                    sum(counts.values()),
                    created_at,
                    metadata,
                    " ".join(counts),
                    json_text,
                    vector,
                ),
            ).fetchone()
            first_doc = first_doc or doc_id
            postings.extend((user_key, term, doc_id, count) for term, count in counts.items())
        connection.executemany("INSERT INTO memory_postings VALUES (?, ?, ?, ?)", postings)
        # Another write may have given a term its vector since the caller looked.
        connection.executemany(
            "INSERT OR IGNORE INTO memory_term_vectors (user_key, term, doc_id, vector) "
            "VALUES (?, ?, ?, ?)",
            ((user_key, term, first_doc, pack_vector(v)) for term, v in term_vectors.items()),
        )


_USER_TABLES = (
    "memory_postings",
    "memory_term_vectors",
    "memory_docs",
    "memory_sessions",
    "memory_users",
)


def _delete(connection: sqlite3.Connection, user_id: str, session_id: str | None) -> None:
    with write_transaction(connection):
        user = _user(connection, user_id)
        if user is None:
            return
        if session_id is not None:
            remaining = _delete_session(connection, user, session_id)
            if remaining:
                return
        for table in _USER_TABLES:
            connection.execute(f"DELETE FROM {table} WHERE user_key = ?", (user.key,))


def _delete_session(connection: sqlite3.Connection, user: _User, session_id: str) -> int:
    """Delete one session's memories, postings and the term vectors no memory holds
    any more; return how many memories the user has left."""
    row = connection.execute(
        "SELECT session_key FROM memory_sessions WHERE user_key = ? AND session_id = ?",
        (user.key, session_id),
    ).fetchone()
    if row is None:
        return user.doc_count
    (session_key,) = row
    docs = connection.execute(
        "SELECT doc_id, length, terms FROM memory_docs WHERE session_key = ?", (session_key,)
    ).fetchall()
    postings = [(user.key, term, doc_id) for doc_id, _, terms in docs for term in terms.split()]
    connection.executemany(
        "DELETE FROM memory_postings WHERE user_key = ? AND term = ? AND doc_id = ?", postings
    )
    connection.execute(
        "DELETE FROM memory_term_vectors WHERE user_key = ? AND term IN "
        f"{_VALUES} AND NOT EXISTS (SELECT 1 FROM memory_postings AS p "
        "WHERE p.user_key = memory_term_vectors.user_key AND p.term = memory_term_vectors.term)",
        (user.key, json_list({term for _, term, _ in postings})),
    )
    connection.execute("DELETE FROM memory_docs WHERE session_key = ?", (session_key,))
    connection.execute("DELETE FROM memory_sessions WHERE session_key = ?", (session_key,))
    connection.execute(
        "UPDATE memory_users SET doc_count = doc_count - ?, total_length = total_length - ?, "
        "removals = removals + 1 WHERE user_key = ?",
        (len(docs), sum(length for _, length, _ in docs), user.key),
    )
    return user.doc_count - len(docs)


def _clear_all(connection: sqlite3.Connection) -> None:
    with write_transaction(connection):
        for table in _USER_TABLES:
            connection.execute(f"DELETE FROM {table}")
