"""Memories in process memory, with an inverted index for search."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from typing_extensions import override

from agentmem._validation import (
    DEFAULT_SESSION_ID,
    check_id,
    check_optional_id,
    parse_list_filters,
    parse_search_filters,
)
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.search.analysis import term_counts
from agentmem.search.ranking import CorpusStats, DocInfo, lexical_search
from agentmem.services.memory.memory_service import MemoryHit, MemoryService, query_text

__all__ = ["InMemoryMemoryService"]


@dataclass(slots=True)
class _Record:
    message: Message
    info: DocInfo
    terms: Counter[str]


@dataclass(slots=True)
class _UserIndex:
    """One user's memories and the inverted index over them.

    ``records`` keeps insertion order, which is the chronological order of listing and
    the recency order of ranking ties.
    """

    records: dict[int, _Record] = field(default_factory=dict)
    sessions: dict[str, list[int]] = field(default_factory=dict)
    inverted: dict[str, dict[int, int]] = field(default_factory=dict)
    total_length: int = 0
    next_id: int = 1

    def add(self, message: Message, session_id: str, created_at: float) -> None:
        doc_id = self.next_id
        self.next_id += 1
        terms = term_counts(message.searchable_text())
        length = sum(terms.values())
        info = DocInfo(doc_id, length, session_id, created_at, message.metadata)
        self.records[doc_id] = _Record(message, info, terms)
        self.sessions.setdefault(session_id, []).append(doc_id)
        for term, count in terms.items():
            self.inverted.setdefault(term, {})[doc_id] = count
        self.total_length += length

    def remove_session(self, session_id: str) -> None:
        for doc_id in self.sessions.pop(session_id, ()):
            record = self.records.pop(doc_id)
            self.total_length -= record.info.length
            for term in record.terms:
                term_postings = self.inverted[term]
                del term_postings[doc_id]
                if not term_postings:
                    del self.inverted[term]

    # The agentmem.search.ranking.IndexView protocol.
    async def corpus_stats(self) -> CorpusStats:
        return CorpusStats(len(self.records), self.total_length)

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        return {term: self.inverted[term] for term in terms if term in self.inverted}

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        return {doc_id: self.records[doc_id].info for doc_id in doc_ids if doc_id in self.records}


class InMemoryMemoryService(MemoryService):
    """Memories in a dict per user; for development, tests and single processes.

    Works without ``start()``. Search uses an inverted index, so its cost follows the
    memories that share terms with the query. Stored messages are copies: changing a
    message after adding it, or a returned one, does not change what is stored.
    """

    def __init__(self) -> None:
        self._users: dict[str, _UserIndex] = {}

    @override
    async def start(self) -> None:
        """Nothing to acquire; kept for the common lifecycle."""

    @override
    async def stop(self) -> None:
        """Keeps the memories: a stopped in-memory service can be started again."""

    @override
    async def health(self) -> bool:
        return True

    @override
    async def add_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        check_id(user_id, "user_id")
        session = check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID
        parsed = [message.model_copy(deep=True) for message in to_messages(messages)]
        if not parsed:
            return
        index = self._users.setdefault(user_id, _UserIndex())
        now = time.time()
        for message in parsed:
            index.add(message, session, now)

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
        index = self._users.get(user_id)
        if index is None or not query:
            return []
        scored = await lexical_search(index, query, parsed_filters)
        hits = []
        for hit in scored:
            record = index.records[hit.doc_id]
            hits.append(
                MemoryHit(
                    message=record.message.model_copy(deep=True),
                    score=hit.score,
                    session_id=record.info.session_id,
                    created_at=datetime.fromtimestamp(record.info.created_at, UTC),
                )
            )
        return hits

    @override
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        index = self._users.get(user_id)
        if index is None:
            return []
        doc_ids: Iterable[int]
        if page.session_id is None:
            doc_ids = index.records
        else:
            doc_ids = index.sessions.get(page.session_id, ())
        window = itertools.islice(doc_ids, page.offset, page.offset + page.page_size)
        return [index.records[doc_id].message.model_copy(deep=True) for doc_id in window]

    @override
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        index = self._users.get(user_id)
        if index is None:
            return
        if session_id is None:
            del self._users[user_id]
            return
        index.remove_session(session_id)
        if not index.records:
            del self._users[user_id]
