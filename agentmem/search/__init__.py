"""Text analysis, ranking and embeddings shared by every memory backend.

Importing this package never imports numpy or a model; the semantic layer
(:mod:`agentmem.search.embeddings`) loads them when first used.
"""

from agentmem.search.analysis import STOP_WORDS, analyze, index_words, term_counts
from agentmem.search.embeddings import (
    Embedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    StoredVectors,
    TermVectors,
    embed_memories,
    embed_query,
    embed_texts,
    pack_vector,
    unit_vector,
    unpack_vector,
)
from agentmem.search.ranking import (
    CorpusStats,
    DocInfo,
    ExplainedScore,
    IndexView,
    RankingParameters,
    ScoredDoc,
    ScoreExplanation,
    SearchFilters,
    TermPoints,
    VectorIndexView,
    hybrid_search,
    lexical_search,
    query_terms,
)

__all__ = [
    "STOP_WORDS",
    "CorpusStats",
    "DocInfo",
    "Embedder",
    "ExplainedScore",
    "IndexView",
    "OpenAIEmbedder",
    "RankingParameters",
    "ScoreExplanation",
    "ScoredDoc",
    "SearchFilters",
    "SentenceTransformerEmbedder",
    "StoredVectors",
    "TermPoints",
    "TermVectors",
    "VectorIndexView",
    "analyze",
    "embed_memories",
    "embed_query",
    "embed_texts",
    "hybrid_search",
    "index_words",
    "lexical_search",
    "pack_vector",
    "query_terms",
    "term_counts",
    "unit_vector",
    "unpack_vector",
]
