"""Ranking of memories for a query: one algorithm, every backend.

A backend stores, per user, the index terms of each memory (from
:func:`agentmem.search.analysis.term_counts`) and exposes them through the
:class:`IndexView` protocol. :func:`lexical_search` does the rest, so the in-memory and
the Redis backends rank the same data identically.

Scoring is BM25 (Robertson & Zaragoza, 2009): terms that are rare among the user's
memories weigh more, repeated terms saturate, and long memories are normalised by length.
Only memories that share at least one term with the query are scored, so a query's cost
grows with the postings of its terms, not with the number of stored memories. Equal
scores rank the newer memory first.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentmem.search.analysis import analyze

__all__ = [
    "BM25Parameters",
    "CorpusStats",
    "DocInfo",
    "IndexView",
    "ScoredDoc",
    "SearchFilters",
    "lexical_search",
    "query_terms",
]


@dataclass(frozen=True, slots=True)
class BM25Parameters:
    """BM25's term-frequency saturation ``k1`` and length normalisation ``b``."""

    k1: float = 1.2
    b: float = 0.75


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """Counts over all of one user's memories."""

    doc_count: int
    total_length: int

    @property
    def average_length(self) -> float:
        return self.total_length / self.doc_count if self.doc_count else 0.0


@dataclass(frozen=True, slots=True)
class DocInfo:
    """What ranking and filtering need to know of one stored memory.

    ``doc_id`` grows with insertion order within a user, so it doubles as the recency
    order for ties.
    """

    doc_id: int
    length: int
    session_id: str
    created_at: float
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions applied before the top ``top_k`` are taken."""

    top_k: int = 100
    session_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    min_score: float | None = None

    def accepts(self, doc: DocInfo) -> bool:
        if self.session_id is not None and doc.session_id != self.session_id:
            return False
        if self.start_time is not None and doc.created_at < self.start_time:
            return False
        if self.end_time is not None and doc.created_at > self.end_time:
            return False
        if self.metadata:
            stored = doc.metadata or {}
            return all(
                key in stored and stored[key] == value for key, value in self.metadata.items()
            )
        return True


@dataclass(frozen=True, slots=True)
class ScoredDoc:
    """One search result: the memory's id and its relevance (higher is better)."""

    doc_id: int
    score: float


class IndexView(Protocol):
    """Read access to one user's index, implemented by every backend."""

    async def corpus_stats(self) -> CorpusStats:
        """Number of memories and the sum of their lengths in terms."""
        ...

    async def postings(self, terms: Sequence[str]) -> Mapping[str, Mapping[int, int]]:
        """For each term, the ids of the memories holding it and how often it occurs.

        Terms held by no memory may be left out.
        """
        ...

    async def documents(self, doc_ids: Iterable[int]) -> Mapping[int, DocInfo]:
        """The :class:`DocInfo` of each id that still exists."""
        ...


def query_terms(text: str) -> list[str]:
    """The distinct index terms of a query, in order of first occurrence."""
    return list(dict.fromkeys(analyze(text)))


def _idf(doc_count: int, doc_freq: int) -> float:
    # The "+1" form never goes negative, so a term held by most memories still counts a
    # little instead of pushing its memories down.
    return math.log(1.0 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))


async def lexical_search(
    view: IndexView,
    query: str,
    filters: SearchFilters,
    params: BM25Parameters | None = None,
) -> list[ScoredDoc]:
    """The best memories for ``query``, best first; ties put the newer memory first."""
    terms = query_terms(query)
    if not terms:
        return []
    params = params or BM25Parameters()
    postings = await view.postings(terms)
    candidates: set[int] = set()
    for term_postings in postings.values():
        candidates.update(term_postings)
    if not candidates:
        return []
    stats, docs = await view.corpus_stats(), await view.documents(candidates)
    average = stats.average_length or 1.0
    scores: dict[int, float] = {}
    for term in terms:
        matches = postings.get(term)
        if not matches:
            continue
        idf = _idf(stats.doc_count, len(matches))
        for doc_id, frequency in matches.items():
            doc = docs.get(doc_id)
            if doc is None:
                continue
            norm = params.k1 * (1.0 - params.b + params.b * doc.length / average)
            gain = idf * frequency * (params.k1 + 1.0) / (frequency + norm)
            scores[doc_id] = scores.get(doc_id, 0.0) + gain
    ranked = (
        ScoredDoc(doc_id, score)
        for doc_id, score in scores.items()
        if filters.accepts(docs[doc_id])
        and (filters.min_score is None or score >= filters.min_score)
    )
    return heapq.nsmallest(filters.top_k, ranked, key=lambda hit: (-hit.score, -hit.doc_id))
