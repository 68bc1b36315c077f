"""Memories in process memory, with an inverted index for search."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from agentmem._validation import ListFilters
from agentmem.schemas.agent_schemas import Message
from agentmem.search.analysis import new_index_words, term_counts
from agentmem.search.embeddings import (
    Embedder,
    StoredVectors,
    TermVectors,
    embed_memories,
    embed_query,
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
from agentmem.services.base import Capability, InProcessLifecycle
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["InMemoryMemoryService"]


@dataclass(slots=True)
class _Record:
    message: Message
    info: DocInfo
    terms: Counter[str]
    vector: npt.NDArray[np.float32] | None
    # Copies are parsed from the JSON, several times faster than a deep copy; the
    # contract admits only messages that JSON carries unchanged.
    json: bytes

    def fields(self) -> dict[str, Any]:
        """The fields of the memory's :class:`MemoryRecord`, with a fresh message."""
        return {
            "message": Message.model_validate_json(self.json),
            "session_id": self.info.session_id,
            "created_at": datetime.fromtimestamp(self.info.created_at, UTC),
        }


@dataclass(slots=True)
class _UserIndex:
    """One user's memories and the inverted index over them.

    ``records`` keeps insertion order, which is the chronological order of listing and
    the recency order of ranking ties. ``sessions`` lists each session's ids in order, so
    a memory's position in its session indexes that list (sessions are only deleted
    whole, so positions never shift).
    """

    records: dict[int, _Record] = field(default_factory=dict)
    sessions: dict[str, list[int]] = field(default_factory=dict)
    # The message ids each session holds: a message is stored once per session.
    message_ids: dict[str, set[str]] = field(default_factory=dict)
    inverted: dict[str, dict[int, int]] = field(default_factory=dict)
    total_length: int = 0
    next_id: int = 1
    # Semantic search only: the vector of each term's word, for query expansion.
    vocabulary: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    # Built on the first semantic search after a change, then reused.
    vector_cache: StoredVectors | None = None
    term_vector_cache: TermVectors | None = None

    def add(
        self,
        message: Message,
        session_id: str,
        created_at: float,
        vector: npt.NDArray[np.float32] | None,
    ) -> None:
        doc_id = self.next_id
        self.next_id += 1
        terms = term_counts(message.searchable_text())
        length = sum(terms.values())
        session = self.sessions.setdefault(session_id, [])
        self.message_ids.setdefault(session_id, set()).add(message.id)
        info = DocInfo(
            doc_id, length, session_id, created_at, message.metadata, position=len(session)
        )
        json = message.__pydantic_serializer__.to_json(message)
        self.records[doc_id] = _Record(message, info, terms, vector, json)
        session.append(doc_id)
        for term, count in terms.items():
            self.inverted.setdefault(term, {})[doc_id] = count
        self.total_length += length
        if vector is not None:
            self.vector_cache = None

    def add_term_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        for term, vector in vectors.items():
            # Another add may have given the term its vector while this one embedded.
            if term in self.inverted and term not in self.vocabulary:
                self.vocabulary[term] = vector
                self.term_vector_cache = None

    def remove_session(self, session_id: str) -> None:
        self.vector_cache = None
        self.term_vector_cache = None
        self.message_ids.pop(session_id, None)
        for doc_id in self.sessions.pop(session_id, ()):
            record = self.records.pop(doc_id)
            self.total_length -= record.info.length
            for term in record.terms:
                term_postings = self.inverted[term]
                del term_postings[doc_id]
                if not term_postings:
                    del self.inverted[term]
                    self.vocabulary.pop(term, None)

    # The agentmem.search.ranking.IndexView protocol.
    async def corpus_stats(self) -> CorpusStats:
        return CorpusStats(len(self.records), self.total_length)

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        return {term: self.inverted[term] for term in terms if term in self.inverted}

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        return {doc_id: self.records[doc_id].info for doc_id in doc_ids if doc_id in self.records}

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        found: dict[int, Sequence[int]] = {}
        for doc_id in doc_ids:
            record = self.records.get(doc_id)
            if record is None:
                continue
            session = self.sessions[record.info.session_id]
            position = record.info.position
            found[doc_id] = [
                *session[max(position - radius, 0) : position],
                *session[position + 1 : position + 1 + radius],
            ]
        return found

    async def vectors(self) -> StoredVectors:
        if self.vector_cache is None:
            self.vector_cache = StoredVectors.from_pairs(
                (doc_id, record.vector)
                for doc_id, record in self.records.items()
                if record.vector is not None
            )
        return self.vector_cache

    async def term_vectors(self) -> TermVectors:
        if self.term_vector_cache is None:
            self.term_vector_cache = TermVectors.from_pairs(self.vocabulary.items())
        return self.term_vector_cache


def new_messages(messages: list[Message], held: Collection[str]) -> list[Message]:
    """``messages`` without those whose id is in ``held`` or repeats an earlier one."""
    seen = set(held)
    fresh = []
    for message in messages:
        if message.id not in seen:
            seen.add(message.id)
            fresh.append(message)
    return fresh


class InMemoryMemoryService(InProcessLifecycle, MemoryService):
    """Memories in a dict per user; for development, tests and single processes.

    Works without ``start()``. Search uses an inverted index, so its cost follows the
    memories that share terms with the query.

    ``embedder`` switches on semantic search (see :mod:`agentmem.search.embeddings`):
    each message is embedded once when added, with the words of the index terms the user
    did not hold yet, and searches fuse lexical and semantic relevance with
    :func:`agentmem.search.ranking.hybrid_search`, so they may also return memories close
    in meaning that share no term with the query. ``ranking`` overrides
    the ranking constants (for experiments; the defaults are the documented ranking).
    """

    capabilities = MemoryService.capabilities | {Capability.IDEMPOTENT_WRITES}

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        ranking: RankingParameters | None = None,
    ) -> None:
        self._users: dict[str, _UserIndex] = {}
        self._embedder = embedder
        self._ranking = ranking or RankingParameters()

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        stored = self._users.get(user_id)
        messages = new_messages(messages, stored.message_ids.get(session_id, ()) if stored else ())
        if not messages:
            return
        vectors: list[npt.NDArray[np.float32] | None] = [None] * len(messages)
        term_vectors: dict[str, npt.NDArray[np.float32]] = {}
        if self._embedder is not None:
            # Embedded before anything is stored, so a failing embedder stores nothing.
            texts = [message.searchable_text() for message in messages]
            held = self._users[user_id].vocabulary if user_id in self._users else {}
            new_terms = new_index_words(texts, held)
            vectors, term_vectors = await embed_memories(self._embedder, texts, new_terms)
        index = self._users.setdefault(user_id, _UserIndex())
        for message, vector in zip(messages, vectors, strict=True):
            index.add(message, session_id, created_at, vector)
        index.add_term_vectors(term_vectors)

    @override
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        if user_id not in self._users:
            return []
        scored: list[ScoredDoc]
        if self._embedder is None:
            index = self._users[user_id]
            scored = await lexical_search(index, query, filters, self._ranking)
        else:
            query_vector, word_vectors = await embed_query(self._embedder, query)
            # Looked up after the await: the memories may have changed meanwhile.
            index = self._users.get(user_id, _UserIndex())
            scored = await hybrid_search(
                index, query, query_vector, filters, self._ranking, word_vectors
            )
        return [MemoryHit(**index.records[hit.doc_id].fields(), score=hit.score) for hit in scored]

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        index = self._users.get(user_id)
        if index is None:
            return []
        doc_ids: Iterable[int]
        if page.session_id is None:
            doc_ids = index.records
        else:
            doc_ids = index.sessions.get(page.session_id, ())
        window = itertools.islice(doc_ids, page.offset, page.offset + page.page_size)
        return [MemoryRecord(**index.records[doc_id].fields()) for doc_id in window]

    @override
    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        index = self._users.get(user_id)
        return [] if index is None else list(index.sessions)

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        index = self._users.get(user_id)
        if index is None:
            return
        if session_id is None:
            del self._users[user_id]
            return
        index.remove_session(session_id)
        if not index.records:
            del self._users[user_id]

    @override
    async def _clear_all(self) -> None:
        self._users.clear()
