"""Text analysis and ranking shared by every memory backend."""

from agentmem.search.analysis import STOP_WORDS, analyze, term_counts
from agentmem.search.ranking import (
    BM25Parameters,
    CorpusStats,
    DocInfo,
    IndexView,
    ScoredDoc,
    SearchFilters,
    lexical_search,
    query_terms,
)

__all__ = [
    "STOP_WORDS",
    "BM25Parameters",
    "CorpusStats",
    "DocInfo",
    "IndexView",
    "ScoredDoc",
    "SearchFilters",
    "analyze",
    "lexical_search",
    "query_terms",
    "term_counts",
]
