"""Retrieval recall of agentmem's memory search on LoCoMo-format conversations.

Each turn is stored as one memory ("Speaker: text", plus " [shares <caption>]" when the
turn shares an image), one session per LoCoMo session and one user per conversation;
each question (categories 1-4, with evidence) is the query. Recall@k of a question is the
share of its evidence turns among the top k results, averaged over questions; it is
printed for each conversation, all of them, and each question category of both.

The conversations evaluated are the files named on the command line; without any, the
LoCoMo files (``*.json``) of the directory named by ``AGENTMEM_LOCOMO_DIR``, or, when it
is not set, the evaluation conversation written for this project
(``benchmarks/data/evaluation_conversation.json``, in LoCoMo's layout).

    python benchmarks/locomo.py
    python benchmarks/locomo.py --method all path/to/locomo/*.json
    python benchmarks/locomo.py --embedder minilm
    python benchmarks/locomo.py --latency 10000
    python benchmarks/locomo.py --backend redis
    python benchmarks/locomo.py --embedder minilm --latency 10000 --no-query-cache

With an embedder, search latency includes embedding the query, as in a real search:
each question is asked cold (the embedder's query cache is emptied before the turns are
stored, so it holds only the words of the stored terms and of earlier questions, as in a
process that stores what it searches), then once more (repeated: every vector cached).
``--no-query-cache`` turns that cache off (agentmem.search.embeddings.QueryVectorCache).

Methods: ``default`` (the backend's search), ``keyword`` (AgentScope Runtime 1.0: the
last k memories containing any query word), ``bm25-plain`` (BM25 on lower-cased words,
stop words removed, no stemming) and ``bm25-stemmed`` (agentmem's first ranking:
Snowball-stemmed BM25 without the neighbouring-turn context), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentmem import InMemoryMemoryService, MemoryService, Message, TextContent
from agentmem.search import STOP_WORDS, Embedder, RankingParameters
from agentmem.search.embeddings import query_cache

#: The evaluation conversation written for this project (not part of LoCoMo).
EVALUATION_CONVERSATION = Path(__file__).resolve().parent / "data" / "evaluation_conversation.json"
#: The environment variable naming a directory of LoCoMo files to evaluate instead.
LOCOMO_DIR_VARIABLE = "AGENTMEM_LOCOMO_DIR"

KS = tuple(range(1, 11))
#: LoCoMo's question categories with evidence. The files number them otherwise than the
#: paper lists them; the data shows which is which: every category 2 question asks
#: "When", category 1 questions need two or more evidence turns, category 3 ones ask what
#: someone "would likely" do, category 4 ones have a single evidence turn. Category 5
#: (adversarial, no answer in the conversation) is left out.
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
METHODS = ("default", "bm25-stemmed", "bm25-plain", "keyword")
# agentmem's first ranking: Snowball-stemmed BM25 over every memory holding a query term,
# without context, BM25L's shift, common terms or a bound on the candidates.
STEMMED_BM25 = RankingParameters(
    context_weights=(), delta=0.0, common_fraction=1.0, min_seeds=sys.maxsize
)


@dataclass(frozen=True)
class Turn:
    dia_id: str
    session_id: str
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True)
class Conversation:
    name: str
    turns: list[Turn]
    questions: list[Question]


def evaluation_files() -> list[Path]:
    """The LoCoMo files of ``$AGENTMEM_LOCOMO_DIR`` if it is set, else the project's
    evaluation conversation."""
    directory = os.environ.get(LOCOMO_DIR_VARIABLE)
    if not directory:
        return [EVALUATION_CONVERSATION]
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise FileNotFoundError(
            f"{LOCOMO_DIR_VARIABLE} is set to {directory}, which holds no LoCoMo file (*.json)"
        )
    return files


def load_conversation(path: Path) -> Conversation:
    """Read one LoCoMo-format file (see the data set's README for the layout)."""
    data = json.loads(path.read_text())
    turns: list[Turn] = []
    number = 1
    while f"session_{number}" in data or f"session_{number}_date_time" in data:
        for turn in data.get(f"session_{number}") or []:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            turns.append(Turn(turn["dia_id"], f"session_{number}", text))
        number += 1
    questions = []
    for qa in data["qa"]:
        evidence = frozenset(
            part for item in qa.get("evidence") or () for part in re.split(r"[;\s]+", item) if part
        )
        if qa.get("category") != 5 and evidence:
            questions.append(Question(qa["question"], evidence, int(qa["category"])))
    return Conversation(path.stem, turns, questions)


@dataclass
class Result:
    """Recall@k per question and search latencies (seconds) of one run.

    ``categories`` holds each question's category, in the order of the recalls (None
    where it was not given); :meth:`add` is the one way in for both. ``latencies`` are
    the searches of the first time each question is asked, ``repeated_latencies`` those
    of asking them all again.
    """

    recalls: dict[int, list[float]] = field(default_factory=lambda: {k: [] for k in KS})
    latencies: list[float] = field(default_factory=list)
    categories: list[int | None] = field(default_factory=list)
    repeated_latencies: list[float] = field(default_factory=list)

    def add(
        self, ranked: Sequence[str], evidence: frozenset[str], category: int | None = None
    ) -> None:
        self.categories.append(category)
        for k in KS:
            self.recalls[k].append(len(set(ranked[:k]) & evidence) / len(evidence))

    def extend(self, other: Result) -> None:
        self.categories.extend(other.categories)
        for k in KS:
            self.recalls[k].extend(other.recalls[k])
        self.latencies.extend(other.latencies)
        self.repeated_latencies.extend(other.repeated_latencies)

    def questions(self, category: int | None = None) -> int:
        """The number of questions (of ``category`` when given)."""
        if category is None:
            return len(self.categories)
        return self.categories.count(category)

    def recall(self, k: int, category: int | None = None) -> float:
        """Mean recall@k over the questions (of ``category`` when given)."""
        values = self.recalls[k]
        if category is not None:
            values = [v for v, c in zip(values, self.categories, strict=True) if c == category]
        return sum(values) / len(values) if values else 0.0

    def latency_ms(self, quantile: float, *, repeated: bool = False) -> float:
        """A quantile of the search latencies in milliseconds (NaN without any)."""
        latencies = self.repeated_latencies if repeated else self.latencies
        if not latencies:
            return math.nan
        ordered = sorted(latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


# A search method: store the turns, then answer queries with ranked dia_ids.
Searcher = Callable[[str], Any]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class KeywordBaseline:
    """AgentScope Runtime 1.0's in-memory search: the last k memories containing any
    whitespace-separated query word (as a substring, case-insensitively), newest first."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = list(turns)

    async def search(self, query: str, top_k: int) -> list[str]:
        words = query.lower().split()
        hits = [turn.dia_id for turn in self.turns if any(w in turn.text.lower() for w in words)]
        return hits[::-1][:top_k]


class PlainBM25Baseline:
    """BM25 (k1 1.2, b 0.75) on lower-cased words without stop words, no stemming."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.ids = [turn.dia_id for turn in turns]
        self.counts = [Counter(w for w in _words(t.text) if w not in STOP_WORDS) for t in turns]
        self.lengths = [sum(counts.values()) for counts in self.counts]
        self.average = sum(self.lengths) / max(len(self.lengths), 1)
        self.doc_freq: Counter[str] = Counter()
        for counts in self.counts:
            self.doc_freq.update(counts.keys())

    async def search(self, query: str, top_k: int) -> list[str]:
        terms = {w for w in _words(query) if w not in STOP_WORDS}
        n = len(self.ids)
        scores: dict[int, float] = {}
        for i, counts in enumerate(self.counts):
            score = 0.0
            for term in terms & counts.keys():
                df = self.doc_freq[term]
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                tf = counts[term]
                norm = 1.2 * (0.25 + 0.75 * self.lengths[i] / self.average)
                score += idf * tf * 2.2 / (tf + norm)
            if score:
                scores[i] = score
        best = sorted(scores, key=lambda i: (-scores[i], -i))[:top_k]
        return [self.ids[i] for i in best]


class ServiceSearcher:
    """A memory service holding the turns of one conversation as one user."""

    def __init__(self, service: MemoryService, user_id: str) -> None:
        self.service = service
        self.user_id = user_id

    async def store(self, turns: Sequence[Turn], copy: int = 0) -> None:
        by_session: dict[str, list[Message]] = {}
        for turn in turns:
            message = Message(
                role="user",
                content=[TextContent(text=turn.text)],
                metadata={"dia_id": turn.dia_id},
            )
            by_session.setdefault(f"{turn.session_id}#{copy}", []).append(message)
        for session_id, messages in by_session.items():
            await self.service.add_memory(self.user_id, messages, session_id=session_id)

    async def search(self, query: str, top_k: int) -> list[str]:
        hits = await self.service.search_memory_hits(self.user_id, query, {"top_k": top_k})
        return [str((hit.message.metadata or {}).get("dia_id")) for hit in hits]


class CachingEmbedder:
    """Remembers the vector of each text, so replicated turns are embedded once.

    Questions asked cold (:func:`cold_queries`) pass through it, so their latency holds
    the model time a real search spends on its query, beside agentmem's own query cache.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.cache: dict[str, Any] = {}
        self.caching = True

    async def embed(self, texts: Sequence[str]) -> Any:
        if not self.caching:
            return await self.inner.embed(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in self.cache))
        if missing:
            for text, vector in zip(missing, await self.inner.embed(missing), strict=True):
                self.cache[text] = vector
        return [self.cache[text] for text in texts]

    @contextlib.contextmanager
    def passing_through(self) -> Iterator[None]:
        """Every text goes to the inner embedder meanwhile, none is cached."""
        self.caching = False
        try:
            yield
        finally:
            self.caching = True


def make_embedder(name: str, args: argparse.Namespace) -> Embedder | None:
    """The embedder named on the command line (``none`` is lexical search only)."""
    if name == "none":
        return None
    if name == "minilm":
        from agentmem.search import SentenceTransformerEmbedder

        return CachingEmbedder(SentenceTransformerEmbedder())
    if name == "openai":
        from agentmem.search import OpenAIEmbedder

        return CachingEmbedder(OpenAIEmbedder(args.openai_model, base_url=args.openai_base_url))
    raise SystemExit(f"unknown embedder {name!r}: use none, minilm or openai")


@contextlib.asynccontextmanager
async def open_service(
    backend: str, embedder: Embedder | None, ranking: RankingParameters | None
) -> AsyncIterator[MemoryService]:
    """A fresh memory service of ``backend`` (``in_memory`` or ``redis``)."""
    if backend == "in_memory":
        yield InMemoryMemoryService(embedder=embedder, ranking=ranking)
        return
    if backend == "redis":
        try:
            from agentmem.services.memory.redis_memory_service import RedisMemoryService
            from agentmem.testing.redis_server import RedisServer
        except ImportError as exc:
            raise SystemExit(f"--backend redis needs agentmem-services[redis] ({exc})") from None
        with RedisServer() as server:
            service = RedisMemoryService(redis_url=server.url, embedder=embedder, ranking=ranking)
            async with service:
                yield service
        return
    raise SystemExit(f"unknown backend {backend!r}: use in_memory or redis")


async def evaluate(
    conversation: Conversation,
    method: str = "default",
    *,
    backend: str = "in_memory",
    embedder: Embedder | None = None,
    top_k: int = 10,
    ranking: RankingParameters | None = None,
    cold: bool = False,
    repeat: bool = False,
) -> Result:
    """Recall@1..10 (per question, with its category) and latencies of ``method`` on
    one conversation.

    ``ranking`` replaces the ranking constants of the ``default`` method. ``cold``
    embeds every question with the model, as the first search of a process would (see
    :func:`cold_queries`), so the latencies include that; ``repeat`` then asks them all
    again, timed as ``repeated_latencies``.
    """
    result = Result()
    if method in ("keyword", "bm25-plain"):
        baseline = (KeywordBaseline if method == "keyword" else PlainBM25Baseline)(
            conversation.turns
        )
        await _ask(baseline.search, conversation.questions, top_k, result, repeat)
        return result
    if method == "bm25-stemmed":
        ranking = STEMMED_BM25
    async with open_service(backend, embedder, ranking) as service:
        searcher = ServiceSearcher(service, f"locomo-{conversation.name}")
        await service.delete_memory(searcher.user_id)
        if cold:
            _forget_queries(embedder)
        await searcher.store(conversation.turns)
        with cold_queries(embedder) if cold else contextlib.nullcontext():
            await _ask(searcher.search, conversation.questions, top_k, result, repeat)
    return result


def _forget_queries(embedder: Embedder | None) -> None:
    """Empty agentmem's query cache of ``embedder``: storing the turns next fills it
    with their terms' words, as in a process that stores what it searches."""
    cache = None if embedder is None else query_cache(embedder)
    if cache is not None:
        cache.clear()


@contextlib.contextmanager
def cold_queries(embedder: Embedder | None) -> Iterator[None]:
    """Searches meanwhile embed with the model what agentmem's query cache does not hold:
    a :class:`CachingEmbedder` passes them through."""
    if isinstance(embedder, CachingEmbedder):
        with embedder.passing_through():
            yield
    else:
        yield


async def _ask(
    search: Any, questions: Sequence[Question], top_k: int, result: Result, repeat: bool = False
) -> None:
    for question in questions:
        start = time.perf_counter()
        ranked = await search(question.text, top_k)
        result.latencies.append(time.perf_counter() - start)
        result.add(ranked, question.evidence, question.category)
    if repeat:
        for question in questions:
            start = time.perf_counter()
            await search(question.text, top_k)
            result.repeated_latencies.append(time.perf_counter() - start)


async def latency_check(
    conversations: Sequence[Conversation],
    size: int,
    *,
    backend: str = "in_memory",
    embedder: Embedder | None = None,
    top_k: int = 10,
    cold: bool = False,
    repeat: bool = False,
) -> Result:
    """Search latency with ``size`` memories of one user: the conversations' turns are
    stored again and again (as new sessions) until ``size`` memories exist, then every
    question is asked (recall is meaningless here: evidence appears many times).

    ``cold`` and ``repeat`` as for :func:`evaluate`."""
    result = Result()
    turns = [turn for conversation in conversations for turn in conversation.turns]
    questions = [question for conversation in conversations for question in conversation.questions]
    async with open_service(backend, embedder, None) as service:
        searcher = ServiceSearcher(service, "locomo-latency")
        await service.delete_memory(searcher.user_id)
        if cold:
            _forget_queries(embedder)
        copy = 0
        stored = 0
        while stored < size:
            batch = turns[: size - stored]
            await searcher.store(batch, copy)
            stored += len(batch)
            copy += 1
        with cold_queries(embedder) if cold else contextlib.nullcontext():
            await _ask(searcher.search, questions, top_k, result, repeat)
    return result


_LABEL_WIDTH = 36


def _row(label: str, result: Result, category: int | None = None) -> str:
    """Recall at 1, 5 and 10 (of one category when given) and, for a whole run, the
    search latency."""
    recalls = " ".join(f"{result.recall(k, category):.3f}" for k in (1, 5, 10))
    row = f"{label:<{_LABEL_WIDTH}} {result.questions(category):4d}  {recalls}"
    if category is None:
        row += f"   {result.latency_ms(0.5):7.3f} {result.latency_ms(0.95):7.3f}"
    return row


def _rows(label: str, result: Result) -> list[str]:
    """The row of ``result`` and one per question category it holds."""
    present = sorted({c for c in result.categories if c is not None})
    rows = [_row(label, result)]
    rows.extend(_row(f"  {CATEGORIES.get(c, f'category {c}')}", result, c) for c in present)
    return rows


def _latency_row(label: str, memories: int, result: Result) -> str:
    figures = [
        f"{result.latency_ms(q, repeated=repeated):8.2f}"
        for repeated in (False, True)
        for q in (0.5, 0.95)
    ]
    searches = len(result.latencies)
    return f"{label:<{_LABEL_WIDTH}} {memories:8d} {searches:8d}  {' '.join(figures)}"


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help=f"LoCoMo-format JSON files (default: ${LOCOMO_DIR_VARIABLE}/*.json, else the "
        "project's evaluation conversation)",
    )
    parser.add_argument("--backend", default="in_memory", choices=["in_memory", "redis"])
    parser.add_argument("--embedder", default="none", help="none, minilm or openai")
    parser.add_argument("--openai-model", default="text-embedding-3-small")
    parser.add_argument("--openai-base-url", default="https://api.openai.com/v1")
    parser.add_argument(
        "--method", default="default", choices=[*METHODS, "all"], help="what to evaluate"
    )
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--latency", type=int, metavar="N", help="also time searches over N memories of one user"
    )
    parser.add_argument(
        "--no-query-cache",
        action="store_true",
        help="turn off the embedder's query cache, to time searches without it",
    )
    args = parser.parse_args(argv)
    conversations = [load_conversation(path) for path in args.files or evaluation_files()]
    embedder = make_embedder(args.embedder, args)
    cache = None if embedder is None else query_cache(embedder)
    if cache is not None and args.no_query_cache:
        cache.max_bytes = 0
    hybrid = embedder is not None
    methods = METHODS if args.method == "all" else (args.method,)
    header = "method / file / category"
    print(f"{header:<{_LABEL_WIDTH}} {'n':>4}  R@1   R@5   R@10    p50 ms  p95 ms")
    timings: list[tuple[str, int, Result]] = []
    for method in methods:
        overall = Result()
        for conversation in conversations:
            result = await evaluate(
                conversation,
                method,
                backend=args.backend,
                embedder=embedder,
                top_k=args.top_k,
                cold=hybrid,
                repeat=hybrid,
            )
            overall.extend(result)
            print("\n".join(_rows(f"{method} {conversation.name}", result)))
            if hybrid and method in ("default", "bm25-stemmed"):
                timings.append((f"{method} {conversation.name}", len(conversation.turns), result))
        print("\n".join(_rows(f"{method} overall", overall)))
    if args.latency:
        timed = await latency_check(
            conversations,
            args.latency,
            backend=args.backend,
            embedder=embedder,
            top_k=args.top_k,
            cold=hybrid,
            repeat=hybrid,
        )
        timings.append((f"default, {args.latency} memories", args.latency, timed))
        if not hybrid:
            print(
                f"search latency with {args.latency} memories: "
                f"p50 {timed.latency_ms(0.5):.3f} ms, p95 {timed.latency_ms(0.95):.3f} ms "
                f"over {len(timed.latencies)} queries"
            )
    if hybrid:
        state = "off" if args.no_query_cache else "on"
        print(f"\nhybrid search latency in ms, embedding the query included (query cache {state})")
        print(
            f"{'method / data':<{_LABEL_WIDTH}} memories searches  cold p50 cold p95 "
            "rept p50 rept p95"
        )
        for label, memories, result in timings:
            print(_latency_row(label, memories, result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
