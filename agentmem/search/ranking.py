"""Ranking of memories for a query: one algorithm, every backend.

The backend contract
--------------------
A backend stores, per user and per memory, at write time:

- ``term_counts(message.searchable_text())`` (:func:`agentmem.search.analysis.term_counts`):
  the memory's index terms and how often each occurs; its *length* is the sum of the
  counts;
- its ``session_id``, its *position* in that session (0 for the session's first memory,
  then 1, 2... in the order of ``add_memory``), its creation time (Unix seconds) and its
  metadata;
- a ``doc_id``: an int that grows with insertion order within the user (the recency
  order of ties);
- only with semantic search switched on: the unit vector of its text, from
  :func:`agentmem.search.embeddings.unit_vector` (stored as
  :func:`agentmem.search.embeddings.pack_vector` bytes where bytes are needed), and for
  each of its index terms the user holds no vector of yet, the unit vector of the word
  behind it (:func:`agentmem.search.analysis.index_words`;
  :func:`agentmem.search.embeddings.embed_memories` embeds both in one call). A term's
  vector leaves with the term's last posting.

Positions must stay stable: memories are deleted only by whole session or whole user, so
a surviving memory's neighbours never change. A backend then implements
:class:`IndexView` over one user's data:

- ``corpus_stats()``: the number of memories and the sum of their lengths;
- ``postings(terms)``: for each term, every memory holding it with its count (terms held
  by no memory may be left out);
- ``documents(doc_ids)``: the :class:`DocInfo` of each id that still exists (unknown ids
  are left out);
- ``neighbours(doc_ids, radius)``: for each existing id, the ids of the memories of the
  same session whose position differs from its own by 1 to ``radius``, in any order;
- ``vectors()`` (semantic search only, :class:`VectorIndexView`): every vector of the
  user, as :class:`~agentmem.search.embeddings.StoredVectors` (memories without text may
  have none); ``term_vectors()``: every term vector of the user, as
  :class:`~agentmem.search.embeddings.TermVectors`.

A search reads ``postings`` before ``corpus_stats``, so a backend may fetch both in one
round trip; a view serves one search and may cache what it read. Everything else
happens here, so the in-memory and the Redis backends rank the same data identically.
Query-time reads are bounded by the postings of the query's terms, plus the
``DocInfo`` and neighbour ids of at most ``max(3 * top_k, 30)`` memories and of the
``2 * radius`` neighbours of each (plus, for hybrid search, the ``top_k`` nearest
vectors and the postings of up to three expansion terms per query term), except
``vectors()`` and ``term_vectors()``: brute-force scans of one user's vectors, read only
when semantic search is on.

How the default (lexical) ranking works
---------------------------------------
Scoring is BM25F (Robertson & Zaragoza, 2009) over two fields: the memory's own text and
its *context*, the memories next to it in the same session. Terms rare among the user's
memories weigh more, repeated terms saturate and long memories are normalised by their
length. As in BM25L (Lv & Zhai, 2011, with their default shift 0.5), the normalised term
frequency of every memory reached by a term is raised by :attr:`RankingParameters.delta`
before saturation: length normalisation no longer buries long memories, and holding a
query term at all counts for more than holding it again. The context field
counts a neighbour's terms at a fraction of their weight
(:attr:`RankingParameters.context_weights`: 0.35 for the memory just before or after,
half that for the next ones), because in a conversation a fact is often split over
turns: "What did you paint?" - "A sunrise." Context only re-weights: **a memory is
returned only if its own text shares a term with the query.**

Which memories are scored: every memory holding a query term, unless a term is *common*
(held by more than a quarter of the memories and by more than
:attr:`RankingParameters.common_min_postings` of them, like the names of the two people
in a long chat). Common terms still add to the score of every memory scored, but only
memories holding a rarer term, and the neighbours of those, are scored, like Lucene's
common-terms query. When even those *seeds* are more than
``max(seeds_per_result * top_k, min_seeds)`` (3 and 30 by default), the best of them by a
BM25L estimate that needs only the postings (no length normalisation, no context) are
kept; memories the filters exclude are dropped before that cut, so a narrow filter never loses
its matches. This keeps a query's cost near a constant times ``top_k``, whatever
the number of memories; on small indexes every holder is scored. Filters (session, time,
metadata, ``min_score``) then select among the scored memories; a neighbour lends
context whether or not the filters accept it. Equal scores rank the newer memory first.

Speakers
--------
A memory whose text opens with a speaker's label (``"Melanie: We went camping"``) holds
a *speaker term* for each word of the label (:func:`agentmem.search.analysis.term_counts`).
A query naming the speaker asks, most of the time, about what that person said, not
about what was said to them; yet the name is a text term of both ("Melanie: ..." and
"Caroline: Thanks, Melanie!") and, held by half the memories of a two-person chat, weighs
little. So a memory holding the speaker term of a query term scores
``1 + speaker_boost`` times its score (:attr:`RankingParameters.speaker_boost`), in
lexical and hybrid search alike. The boost only re-orders memories the ranking already
scored. The search-quality guide of the documentation shows the sweep of the boost.
Memories stored before speaker terms existed have none: exporting and importing the
user indexes them.

Hybrid (semantic) ranking
-------------------------
With query and memory vectors, :func:`hybrid_search` adds ``semantic_weight`` times the
memory's *meaning* to the lexical score divided by the best lexical score of the query,
so both parts are on a 0..1 scale. The meaning is the cosine similarity of query and
memory (clipped at 0) plus :attr:`RankingParameters.semantic_context` times the best
cosine among the memory's neighbours, each weighted by its context weight relative to
the turn next to it: the semantic counterpart of the lexical context field, for
answers whose question carries the meaning ("What did you paint?" - "A sunrise").
Candidates are the lexical ones plus the ``top_k`` memories nearest in meaning, which
may share no term with the query. Adding
normalised scores keeps how much better one memory is than another, which reciprocal
rank fusion throws away.

The embedding model also serves the lexical part, in two ways:

- **Query expansion.** When a memory brings an index term the user did not hold yet, the
  backend stores the vector of the word behind it (:meth:`VectorIndexView.term_vectors`).
  A query term then also matches, for each query word, the
  :attr:`RankingParameters.expansion_terms` (3) terms of the user whose words are at
  least :attr:`RankingParameters.expansion_similarity` (0.55) similar to it, at
  :attr:`RankingParameters.expansion_weight` (0.5) times that similarity: "kids"
  reaches "children", "job" reaches "career". Only the user's own terms can be added, so
  the expansion never matches what the user does not hold, and each query word adds at
  most three terms to the postings read.
- **Replies are candidates.** A memory next to one holding a rarer query term is scored
  even without a term of its own (it needs some text: a turn of only stop words is
  not), since its context field already holds the term: "What did you paint?" - "A
  sunrise." The cosine then decides whether the reply is about the query.

The search-quality guide of the documentation measures what each of these brings.

Explaining a score
------------------
With ``SearchFilters(explain=True)`` each returned :class:`ScoredDoc` carries an
:class:`ExplainedScore`: the same number, with a :class:`ScoreExplanation` of its parts.
BM25F saturates the sum of what the memory's own text and its neighbours hold of a term
(plus BM25L's shift), so a term's points are shared between the two in proportion to
what each brought. In hybrid search the lexical points are divided by the query's best
lexical score, and the semantic part is ``semantic_weight`` times the cosine. The parts
add up to the score. A backend builds its hits with ``score=scored.score``, and
:class:`~agentmem.services.memory.memory_service.MemoryHit` takes the explanation from
there, so every backend that ranks here explains its hits without code of its own.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

from agentmem.schemas.display import Column, Table
from agentmem.search.analysis import analyze, speaker_terms

if TYPE_CHECKING:
    from agentmem.search.embeddings import StoredVectors, TermVectors

__all__ = [
    "CorpusStats",
    "DocInfo",
    "ExplainedScore",
    "IndexView",
    "RankingParameters",
    "ScoreExplanation",
    "ScoredDoc",
    "SearchFilters",
    "TermPoints",
    "VectorIndexView",
    "hybrid_search",
    "lexical_search",
    "query_terms",
]


@dataclass(frozen=True, slots=True)
class RankingParameters:
    """The constants of the ranking; the defaults are what every backend uses.

    ``k1`` and ``b`` are BM25's term-frequency saturation and length normalisation
    (the usual defaults). ``delta`` is BM25L's shift, added to the normalised term
    frequency (own text plus context) of every memory a term reaches; 0 gives plain
    BM25F. ``context_weights[i]`` is the weight of a neighbour ``i + 1`` positions away
    (an empty tuple switches context off). A term is common when held by more than
    ``common_fraction`` of the memories and more than ``common_min_postings`` of them. At
    most ``max(seeds_per_result * top_k, min_seeds)`` seeds are scored in full.
    A memory said by a speaker the query names (see "Speakers" above) scores
    ``1 + speaker_boost`` times its score (0 switches it off).
    ``semantic_weight`` is the weight of meaning in :func:`hybrid_search`, in which the
    best neighbour's cosine counts ``semantic_context`` times (0 switches that off).
    Hybrid search also adds, for each query term, up to ``expansion_terms`` of the user's terms
    whose words are at least ``expansion_similarity`` similar to the query word, each
    weighing ``expansion_weight`` times that similarity (0 terms switches it off).
    """

    k1: float = 1.2
    b: float = 0.75
    delta: float = 0.5
    context_weights: tuple[float, ...] = (0.35, 0.175)
    common_fraction: float = 0.25
    common_min_postings: int = 256
    speaker_boost: float = 0.4
    semantic_weight: float = 1.0
    semantic_context: float = 0.5
    expansion_terms: int = 3
    expansion_similarity: float = 0.55
    expansion_weight: float = 0.5
    seeds_per_result: int = 3
    min_seeds: int = 30

    @property
    def radius(self) -> int:
        return len(self.context_weights)


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
    order for ties. ``position`` is the memory's index within its session (from 0).
    """

    doc_id: int
    length: int
    session_id: str
    created_at: float
    metadata: Mapping[str, Any] | None = None
    position: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions applied before the top ``top_k`` are taken, and whether the scores
    of those are explained (see "Explaining a score" above)."""

    top_k: int = 100
    session_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    min_score: float | None = None
    explain: bool = False

    @property
    def restricts_documents(self) -> bool:
        """Whether some memories are excluded whatever their score."""
        return bool(
            self.session_id is not None
            or self.start_time is not None
            or self.end_time is not None
            or self.metadata
        )

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
class TermPoints:
    """What one index term brought to a memory's score.

    ``text`` came from the memory's own text and ``context`` from the memories next to
    it. ``expands`` is the query term this term was added for by query expansion
    (hybrid search), None for a term of the query itself.
    """

    term: str
    text: float
    context: float
    expands: str | None = None

    @property
    def points(self) -> float:
        return self.text + self.context


@dataclass(frozen=True, slots=True)
class ScoreExplanation:
    """A memory's score broken into its parts, which add up to ``score``.

    ``terms`` holds each index term that reached the memory, the query's own in query
    order, then expansion terms; ``semantic`` is the part of meaning (hybrid search:
    ``semantic_weight`` times the cosine of query and memory, else 0); ``speaker`` is
    what the memory gained by being said by a speaker the query names (else 0). In
    Jupyter it shows as a table.
    """

    score: float
    terms: tuple[TermPoints, ...]
    semantic: float = 0.0
    speaker: float = 0.0

    def summary(self) -> str:
        """The parts on one line, largest first: ``backhand 0.89 + tenni 0.25 (context
        0.05)``; a term that only the neighbours hold reads ``(context)``."""
        parts = [(part.points, _term_summary(part)) for part in self.terms]
        if self.semantic:
            parts.append((self.semantic, f"meaning {self.semantic:.2f}"))
        if self.speaker:
            parts.append((self.speaker, f"speaker {self.speaker:.2f}"))
        return " + ".join(text for _, text in sorted(parts, reverse=True))

    def table(self) -> Table:
        """Term, origin, points from the text, from the context and in all."""
        rows = [
            [
                part.term,
                "query" if part.expands is None else f"expands {part.expands}",
                f"{part.text:.3f}",
                f"{part.context:.3f}",
                f"{part.points:.3f}",
            ]
            for part in self.terms
        ]
        if self.semantic:
            rows.append(["", "meaning", "", "", f"{self.semantic:.3f}"])
        if self.speaker:
            rows.append(["", "speaker", "", "", f"{self.speaker:.3f}"])
        rows.append(["", "score", "", "", f"{self.score:.3f}"])
        return Table(
            [
                Column("term", "code"),
                Column("from"),
                Column("text", "number"),
                Column("context", "number"),
                Column("points", "number"),
            ],
            rows,
        )

    def _repr_html_(self) -> str:
        return self.table().html()

    def _repr_markdown_(self) -> str:
        return self.table().markdown()


def _term_summary(part: TermPoints) -> str:
    name = part.term if part.expands is None else f"{part.term} (for {part.expands})"
    if not part.text:
        return f"{name} {part.points:.2f} (context)"
    if part.context:
        return f"{name} {part.points:.2f} (context {part.context:.2f})"
    return f"{name} {part.points:.2f}"


class ExplainedScore(float):
    """A score that carries its :class:`ScoreExplanation`; as a number, the score."""

    __slots__ = ("explanation",)
    explanation: ScoreExplanation

    def __new__(cls, explanation: ScoreExplanation) -> Self:
        score = super().__new__(cls, explanation.score)
        score.explanation = explanation
        return score


@dataclass(frozen=True, slots=True)
class ScoredDoc:
    """One search result: the memory's id and its relevance (higher is better).

    ``score`` is an :class:`ExplainedScore` when the search was asked to explain.
    """

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

    async def neighbours(self, doc_ids: Iterable[int], radius: int) -> Mapping[int, Sequence[int]]:
        """For each existing id, the ids in its session at 1 to ``radius`` positions away."""
        ...


class VectorIndexView(IndexView, Protocol):
    """An :class:`IndexView` that also holds one unit vector per memory and per term."""

    async def vectors(self) -> StoredVectors:
        """Every vector of the user (memories without text may have none)."""
        ...

    async def term_vectors(self) -> TermVectors:
        """The vector of every index term of the user that has one."""
        ...


def query_terms(text: str) -> list[str]:
    """The distinct index terms of a query, in order of first occurrence."""
    return list(dict.fromkeys(analyze(text)))


def _idf(doc_count: int, doc_freq: int) -> float:
    # The "+1" form never goes negative, so a term held by most memories still counts a
    # little instead of pushing its memories down.
    return math.log(1.0 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))


async def _lexical_scores(
    view: IndexView,
    weights: Mapping[str, float],
    params: RankingParameters,
    filters: SearchFilters,
    extra: Collection[int] = (),
    *,
    speakers: Sequence[str] = (),
    context_candidates: bool = False,
    trace: dict[int, list[_Traced]] | None = None,
) -> _Lexical:
    """BM25F scores of the memories that hold a query term (see :class:`_Lexical`).

    ``weights`` maps each query term to the factor of its idf (1 for the query's own).
    ``speakers`` are the speaker terms of the query's own terms.
    ``extra`` ids are scored too when they hold a term (the semantic candidates). With
    ``context_candidates``, a memory next to one holding a rarer term is scored even
    without a term of its own. ``trace``, when given, receives for each memory scored
    the points of each term and the share of them its own text brought, in the order
    they were added to the score.
    """
    limit = max(params.seeds_per_result * filters.top_k, params.min_seeds)
    # Speaker terms are read in the same call: a backend may fetch them in one trip.
    read = await view.postings([*weights, *speakers])
    said: set[int] = set()
    for term in speakers:
        said.update(read.get(term, ()))
    postings = {term: p for term in weights if (p := read.get(term))}
    if not postings and not extra:
        return _Lexical(said=said)
    stats = await view.corpus_stats()
    common_size = max(params.common_fraction * stats.doc_count, params.common_min_postings)
    selective = [(t, p) for t, p in postings.items() if len(p) <= common_size]
    seed_terms = selective or list(postings.items())
    seeds: set[int] = set()
    for _, term_postings in seed_terms:
        seeds.update(term_postings)
    if len(seeds) > limit and filters.restricts_documents:
        # Pruning must not drop the few memories the filters let through.
        infos = await view.documents(seeds)
        seeds = {doc_id for doc_id, doc in infos.items() if filters.accepts(doc)}
    if len(seeds) > limit:
        # Too many to score in full: keep those best by a BM25 without length
        # normalisation, which the postings alone can tell.
        rough: dict[int, float] = dict.fromkeys(seeds, 0.0)
        for term, term_postings in seed_terms:
            idf = weights[term] * _idf(stats.doc_count, len(term_postings))
            for doc_id, count in term_postings.items():
                if doc_id in rough:
                    shifted = count + params.delta
                    rough[doc_id] += idf * shifted / (shifted + params.k1)
        # (estimate, id) pairs: equal estimates keep the newer memory.
        best = heapq.nlargest(limit, zip(rough.values(), rough.keys(), strict=True))
        seeds = {doc_id for _, doc_id in best}
    seeds.update(extra)
    # The reach is twice the context's: it covers the seeds' neighbours' context too.
    docs, around = await _read_around(view, seeds, params, reach=2)
    context = {doc_id: around(docs[doc_id]) for doc_id in seeds if doc_id in docs}
    reached = set(seeds)
    if selective:
        # Memories holding only common terms count when they sit next to a selective one.
        for neighbours in context.values():
            reached.update(neighbour for neighbour, _ in neighbours)
    candidates: set[int] = set()
    if context_candidates:
        # Each memory reached holds a term or sits next to a memory that does; one
        # without any term of its own (no text, or only stop words) says nothing.
        candidates.update(doc_id for doc_id in reached if doc_id in docs and docs[doc_id].length)
    else:
        for term_postings in postings.values():
            if len(term_postings) < len(reached):
                candidates.update(doc_id for doc_id in term_postings if doc_id in reached)
            else:
                candidates.update(doc_id for doc_id in reached if doc_id in term_postings)
    candidates.intersection_update(docs)
    if not candidates:
        return _Lexical(docs=docs, said=said, context=context)
    average = stats.average_length or 1.0
    k1, b, delta = params.k1, params.b, params.delta
    for doc_id in candidates.difference(context):
        context[doc_id] = around(docs[doc_id])
    # Who lends context to whom, to find the memories a term reaches.
    lenders: dict[int, list[int]] = {}
    for doc_id in candidates:
        for neighbour, _ in context[doc_id]:
            lenders.setdefault(neighbour, []).append(doc_id)
    scope = candidates.union(lenders)
    # A memory's term counts divided by its length normalisation, BM25F style, so the
    # counts of the memory and of its neighbours can be added before saturation.
    inverse_norm = {doc_id: 1.0 / (1.0 - b + b * docs[doc_id].length / average) for doc_id in scope}
    scores: dict[int, float] = dict.fromkeys(candidates, 0.0)
    for term, term_postings in postings.items():
        idf = weights[term] * _idf(stats.doc_count, len(term_postings))
        # One lookup per memory on the shorter side (a backend's postings may cost a
        # search per lookup).
        if len(scope) < len(term_postings):
            count_of = term_postings.get
            counts = {doc_id: count for doc_id in scope if (count := count_of(doc_id, 0))}
        else:
            counts = {doc_id: count for doc_id, count in term_postings.items() if doc_id in scope}
        normalised = {doc_id: count * inverse_norm[doc_id] for doc_id, count in counts.items()}
        reached_by_term = candidates.intersection(normalised)
        for doc_id in normalised:
            borrowers = lenders.get(doc_id)
            if borrowers:
                reached_by_term.update(borrowers)
        held = normalised.get
        for doc_id in reached_by_term:
            # Summed in a fixed order (self, then neighbours by distance), so equal
            # memories get bit-identical scores in every backend.
            own = value = held(doc_id, 0.0)
            for neighbour, weight in context[doc_id]:
                value += weight * held(neighbour, 0.0)
            # BM25L's shift (every memory reached holds the term itself or in context).
            shifted = value + delta
            points = idf * shifted * (k1 + 1.0) / (shifted + k1)
            scores[doc_id] += points
            if trace is not None:
                trace.setdefault(doc_id, []).append((term, points, own / value if value else 1.0))
    if context_candidates:
        # Semantic candidates holding no term, and their neighbours, score nothing here.
        scores = {doc_id: score for doc_id, score in scores.items() if score > 0.0}
    return _Lexical(scores, docs, said, context)


# A memory's neighbours in its session, each with its context weight.
_Context = list[tuple[int, float]]


@dataclass(slots=True)
class _Lexical:
    """What the lexical scoring found.

    ``scores``: the BM25F score of each memory scored; ``docs``: the :class:`DocInfo` of
    every memory read (the scored ones, the seeds and their neighbours); ``said``: the
    ids of the memories said by a speaker the query names; ``context``: the neighbours
    of every memory looked at (scored or not).
    """

    scores: dict[int, float] = field(default_factory=dict)
    docs: dict[int, DocInfo] = field(default_factory=dict)
    said: set[int] = field(default_factory=set)
    context: dict[int, _Context] = field(default_factory=dict)


async def _read_around(
    view: IndexView, doc_ids: set[int], params: RankingParameters, reach: int = 1
) -> tuple[dict[int, DocInfo], Callable[[DocInfo], _Context]]:
    """The :class:`DocInfo` of ``doc_ids`` and of the memories up to ``reach`` times the
    context's radius around them, in one read of each, and a function giving a memory's
    neighbours among those read, with their context weights."""
    radius = params.radius
    wide = await view.neighbours(doc_ids, reach * radius) if radius else {}
    docs = dict(await view.documents(doc_ids.union(*wide.values())))
    slot = {(doc.session_id, doc.position): doc_id for doc_id, doc in docs.items()}
    offsets = [
        (sign * distance, weight)
        for distance, weight in enumerate(params.context_weights, start=1)
        for sign in (-1, 1)
    ]

    def around(doc: DocInfo) -> _Context:
        session, position, find = doc.session_id, doc.position, slot.get
        return [
            (neighbour, weight)
            for offset, weight in offsets
            if (neighbour := find((session, position + offset))) is not None
        ]

    return docs, around


# One term's part of a memory's lexical score: (term, points, share of the memory's text).
_Traced = tuple[str, float, float]


def _explained(
    hits: list[ScoredDoc],
    trace: Mapping[int, Sequence[_Traced]],
    expanded: Mapping[str, str],
    scale: float = 1.0,
    semantic: Mapping[int, float] | None = None,
    unboosted: Mapping[int, float] | None = None,
) -> list[ScoredDoc]:
    """``hits`` with their scores explained by the ``trace`` of the lexical scoring.

    ``expanded`` maps expansion terms to the query term they expand; lexical points are
    divided by ``scale``; ``semantic`` holds the semantic part of each hit and
    ``unboosted`` each score before the speaker boost.
    """
    explained = []
    for hit in hits:
        terms = []
        for term, points, share in trace.get(hit.doc_id, ()):
            scaled = points / scale
            text = scaled * share
            terms.append(TermPoints(term, text, scaled - text, expanded.get(term)))
        meaning = semantic.get(hit.doc_id, 0.0) if semantic is not None else 0.0
        before = unboosted.get(hit.doc_id, hit.score) if unboosted is not None else hit.score
        explanation = ScoreExplanation(hit.score, tuple(terms), meaning, hit.score - before)
        explained.append(ScoredDoc(hit.doc_id, ExplainedScore(explanation)))
    return explained


def _best(
    scores: Mapping[int, float], docs: Mapping[int, DocInfo], filters: SearchFilters
) -> list[ScoredDoc]:
    ranked = (
        ScoredDoc(doc_id, score)
        for doc_id, score in scores.items()
        if doc_id in docs
        and filters.accepts(docs[doc_id])
        and (filters.min_score is None or score >= filters.min_score)
    )
    return heapq.nsmallest(filters.top_k, ranked, key=lambda hit: (-hit.score, -hit.doc_id))


async def lexical_search(
    view: IndexView,
    query: str,
    filters: SearchFilters,
    params: RankingParameters | None = None,
) -> list[ScoredDoc]:
    """The best memories for ``query``, best first; ties put the newer memory first.

    Only memories sharing a term with the query are returned.
    """
    terms = query_terms(query)
    if not terms:
        return []
    params = params or RankingParameters()
    trace: dict[int, list[_Traced]] | None = {} if filters.explain else None
    found = await _lexical_scores(
        view,
        dict.fromkeys(terms, 1.0),
        params,
        filters,
        speakers=_speakers(terms, params),
        trace=trace,
    )
    boosted = _boosted(found.scores, found.said, params)
    best = _best(boosted, found.docs, filters)
    return best if trace is None else _explained(best, trace, {}, unboosted=found.scores)


def _speakers(terms: Sequence[str], params: RankingParameters) -> list[str]:
    """The speaker terms whose memories the boost raises (none when it is off)."""
    return speaker_terms(terms) if params.speaker_boost else []


def _boosted(
    scores: Mapping[int, float], said: Collection[int], params: RankingParameters
) -> dict[int, float]:
    """``scores`` with those of memories said by a speaker the query names raised."""
    factor = 1.0 + params.speaker_boost
    return {doc_id: score * factor if doc_id in said else score for doc_id, score in scores.items()}


async def hybrid_search(
    view: VectorIndexView,
    query: str,
    query_vector: Sequence[float] | Any,
    filters: SearchFilters,
    params: RankingParameters | None = None,
    word_vectors: Mapping[str, Sequence[float] | Any] | None = None,
) -> list[ScoredDoc]:
    """Lexical and semantic relevance fused; ties put the newer memory first.

    ``query_vector`` is the query's embedding (any length matching the stored vectors;
    it is normalised here). ``word_vectors`` maps query terms to the unit vectors of
    their words (:func:`agentmem.search.embeddings.embed_query`), for query expansion.
    Memories close in meaning are returned even when they share no term with the query.
    """
    from agentmem.search.embeddings import unit_vector

    params = params or RankingParameters()
    stored = await view.vectors()
    similarity = stored.similarities(unit_vector(query_vector))
    nearest = await _nearest(view, stored.doc_ids, similarity, filters)
    terms = query_terms(query)
    weights = dict.fromkeys(terms, 1.0)
    expanded: dict[str, str] = {}
    if word_vectors and params.expansion_terms > 0:
        expansions = _expansions(await view.term_vectors(), word_vectors, terms, params)
        for term, (weight, source) in expansions.items():
            weights[term] = weight
            expanded[term] = source
    trace: dict[int, list[_Traced]] | None = {} if filters.explain else None
    found = (
        await _lexical_scores(
            view,
            weights,
            params,
            filters,
            nearest,
            speakers=_speakers(terms, params),
            context_candidates=True,
            trace=trace,
        )
        if weights
        else _Lexical()
    )
    scores, docs, context = found.scores, found.docs, found.context
    # Semantic candidates the lexical scoring did not read (a query of no index term).
    unseen = {doc_id for doc_id in nearest if doc_id not in context}
    if unseen:
        around_docs, around = await _read_around(view, unseen, params)
        docs.update(around_docs)
        # A memory deleted since its vector was read is left out.
        context.update(
            (doc_id, around(around_docs[doc_id])) for doc_id in unseen if doc_id in around_docs
        )
    best_lexical = max(scores.values(), default=0.0) or 1.0
    row_of = stored.row_index()

    def cosine(doc_id: int) -> float:
        row = row_of.get(doc_id)
        return max(float(similarity[row]), 0.0) if row is not None else 0.0

    # The best neighbour's cosine, each weighted relative to the turn next to it.
    adjacent = params.context_weights[0] if params.context_weights else 1.0
    fused: dict[int, float] = {}
    semantic: dict[int, float] = {}
    for doc_id in set(scores).union(nearest):
        around_meaning = max(
            (weight / adjacent * cosine(n) for n, weight in context.get(doc_id, ())),
            default=0.0,
        )
        meaning = cosine(doc_id) + params.semantic_context * around_meaning
        semantic[doc_id] = params.semantic_weight * meaning
        fused[doc_id] = scores.get(doc_id, 0.0) / best_lexical + semantic[doc_id]
    boosted = _boosted(fused, found.said, params)
    best = _best(boosted, docs, filters)
    if trace is None:
        return best
    return _explained(best, trace, expanded, best_lexical, semantic, fused)


def _expansions(
    vocabulary: TermVectors,
    word_vectors: Mapping[str, Sequence[float] | Any],
    terms: Sequence[str],
    params: RankingParameters,
) -> dict[str, tuple[float, str]]:
    """The user's terms whose words are near a query word's, each with its weight and
    the query term it expands (the one giving the largest weight)."""
    from agentmem.search.embeddings import unit_vector

    own = set(terms)
    weights: dict[str, tuple[float, str]] = {}
    for term in terms:
        vector = word_vectors.get(term)
        if vector is None:
            continue
        # The query's own terms may be among the nearest: ask for enough to skip them.
        near = vocabulary.nearest(
            unit_vector(vector), params.expansion_terms + len(own), params.expansion_similarity
        )
        added = [(other, similarity) for other, similarity in near if other not in own]
        for other, similarity in added[: params.expansion_terms]:
            weight = params.expansion_weight * similarity
            if other not in weights or weight > weights[other][0]:
                weights[other] = (weight, term)
    return weights


async def _nearest(
    view: IndexView, doc_ids: Sequence[int], similarity: Any, filters: SearchFilters
) -> list[int]:
    """The ids of the ``top_k`` memories most similar in meaning that pass ``filters``."""
    import numpy

    ids = numpy.asarray(doc_ids, dtype=numpy.int64)
    rows = numpy.arange(len(ids))
    if not filters.restricts_documents and len(ids) > filters.top_k:
        # Only the top_k can be chosen: sort just the rows at least as similar as the
        # k-th best (ties included, so the choice never depends on row order).
        kth = numpy.partition(similarity, len(ids) - filters.top_k)[len(ids) - filters.top_k]
        rows = numpy.flatnonzero(similarity >= kth)
    # Most similar first; equal similarities put the newer memory first, as elsewhere.
    order = rows[numpy.lexsort((-ids[rows], -similarity[rows]))]
    chosen: list[int] = []
    start = 0
    # Filters are checked on DocInfo, so walk down the similarity order a page at a time
    # until enough memories pass them.
    while len(chosen) < filters.top_k and start < len(order):
        page = [doc_ids[int(row)] for row in order[start : start + filters.top_k]]
        start += filters.top_k
        infos = await view.documents(page)
        chosen.extend(
            doc_id for doc_id in page if doc_id in infos and filters.accepts(infos[doc_id])
        )
    return chosen[: filters.top_k]
