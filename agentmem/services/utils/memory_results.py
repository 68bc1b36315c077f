"""Memory records and search hits from what a hosted store returns.

The hosted stores rank by their own scoring and filter only part of what
:class:`~agentmem.search.ranking.SearchFilters` asks, so their results pass through
:class:`HitFilter`, which applies the rest as the shared ranking does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentmem.schemas.agent_schemas import Message
from agentmem.search.analysis import analyze
from agentmem.search.ranking import DocInfo, SearchFilters, query_terms
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord

__all__ = ["HitFilter", "memory_record"]


def _fields(message: Message, session_id: str, created_at: float) -> dict[str, Any]:
    return {
        "message": message,
        "session_id": session_id,
        "created_at": datetime.fromtimestamp(created_at, UTC),
    }


def memory_record(message: Message, session_id: str, created_at: float) -> MemoryRecord:
    """The record of a memory stored at ``created_at`` (Unix seconds)."""
    return MemoryRecord(**_fields(message, session_id, created_at))


class HitFilter:
    """Keeps the memories a store found for ``query`` that agentmem's contract admits.

    A hit must share an index term with the query and pass every filter: session, time
    range, metadata and ``min_score``, on the store's score.
    """

    def __init__(self, query: str, filters: SearchFilters) -> None:
        #: The query's index terms; without any, nothing matches.
        self.terms = query_terms(query)
        self._wanted = set(self.terms)
        self._filters = filters

    def hit(
        self, message: Message, session_id: str, created_at: float, score: float
    ) -> MemoryHit | None:
        """The memory as a hit, or None when the query or the filters exclude it."""
        filters = self._filters
        if filters.min_score is not None and score < filters.min_score:
            return None
        # Only the fields the filters read; a hosted store has no doc id or length.
        doc = DocInfo(0, 0, session_id, created_at, message.metadata, position=0)
        if not filters.accepts(doc):
            return None
        if self._wanted.isdisjoint(analyze(message.searchable_text())):
            return None
        return MemoryHit(**_fields(message, session_id, created_at), score=score)
