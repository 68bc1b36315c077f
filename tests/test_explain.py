"""Explained scores: the parts of a hit's score, as data and as a table.

The conformance suite checks on every backend that ranks that the parts add up to the
score; these tests cover hybrid search (semantic part, expansion terms) on the
in-memory, SQLite and Redis backends, and what the explanation says and shows.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import pytest

from agentmem import (
    InMemoryMemoryService,
    MemoryHit,
    MemoryService,
    RedisMemoryService,
    SQLiteMemoryService,
)
from agentmem.errors import InvalidArgumentError
from agentmem.search.ranking import ExplainedScore, ScoreExplanation, TermPoints
from tests.helpers import AxisEmbedder, text_message
from tests.redis_backends import drop_keys, unique_prefix

# "kids" and "children" share an axis, so query expansion takes one for the other.
_SYNONYMS = {"kid": 0, "children": 0}
_DIMENSIONS = 256


def synonym_embedder() -> AxisEmbedder:
    return AxisEmbedder(_SYNONYMS, _DIMENSIONS)


@pytest.fixture(params=["in_memory", "sqlite", "redis"])
async def hybrid_memory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[MemoryService]:
    pytest.importorskip("numpy")
    if request.param == "in_memory":
        yield InMemoryMemoryService(embedder=synonym_embedder())
        return
    if request.param == "sqlite":
        path = request.getfixturevalue("tmp_path") / "memory.db"
        async with SQLiteMemoryService(path, embedder=synonym_embedder()) as sqlite:
            yield sqlite
        return
    url = request.getfixturevalue("redis_url")
    prefix = unique_prefix()
    async with RedisMemoryService(url, key_prefix=prefix, embedder=synonym_embedder()) as service:
        yield service
    drop_keys(url, prefix)


def total(explanation: ScoreExplanation) -> float:
    parts = [part.points for part in explanation.terms]
    return math.fsum([*parts, explanation.semantic, explanation.speaker])


async def test_hybrid_parts_add_up_with_meaning_and_expansions(
    hybrid_memory: MemoryService,
) -> None:
    await hybrid_memory.add_memory(
        "u1",
        [
            text_message("My children love the beach"),
            text_message("We went swimming at the beach"),
            text_message("The office was quiet today"),
        ],
    )
    hits = await hybrid_memory.search_memory_hits("u1", "kids at the beach", explain=True)
    assert hits
    for hit in hits:
        assert hit.explanation is not None
        assert total(hit.explanation) == pytest.approx(hit.score, rel=1e-9, abs=1e-12)
    first = hits[0]
    assert first.message.get_text_content() == "My children love the beach"
    assert first.explanation is not None and first.explanation.semantic > 0
    expansions = {part.term: part.expands for part in first.explanation.terms if part.expands}
    assert expansions == {"children": "kid"}


async def test_explaining_changes_no_score(hybrid_memory: MemoryService) -> None:
    await hybrid_memory.add_memory(
        "u1", [text_message(f"kids and tea number {i}") for i in range(5)]
    )
    plain = await hybrid_memory.search_memory_hits("u1", "tea for the kids")
    explained = await hybrid_memory.search_memory_hits("u1", "tea for the kids", explain=True)
    assert [(hit.message.id, hit.score) for hit in explained] == [
        (hit.message.id, hit.score) for hit in plain
    ]


async def test_a_reply_scores_by_its_context() -> None:
    memory = InMemoryMemoryService()
    await memory.add_memory(
        "u1",
        [
            text_message("What did you paint last weekend?"),
            text_message("A sunrise, painted over the lake"),
        ],
    )
    hits = await memory.search_memory_hits("u1", "what did you paint?", explain=True)
    reply = next(hit for hit in hits if "sunrise" in (hit.message.get_text_content() or ""))
    assert reply.explanation is not None
    [paint] = reply.explanation.terms
    assert paint.term == "paint" and paint.expands is None
    assert paint.text > 0 and paint.context > 0
    assert "paint" in reply.explanation.summary() and "(context" in reply.explanation.summary()


async def test_explain_must_be_a_bool() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await InMemoryMemoryService().search_memory_hits("u1", "tea", explain="yes")  # type: ignore[arg-type]
    assert raised.value.field == "explain"


def test_an_explained_score_is_its_number() -> None:
    explanation = ScoreExplanation(1.5, (TermPoints("tea", 1.0, 0.5),))
    score = ExplainedScore(explanation)
    assert score == 1.5 and float(score) == 1.5 and score.explanation is explanation
    hit = MemoryHit(message=text_message("tea"), session_id="s", created_at=0, score=score)
    assert hit.explanation is explanation and type(hit.score) is float
    assert hit.model_dump()["explanation"]["terms"][0]["term"] == "tea"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_the_explanation_table_lists_each_part_and_the_score() -> None:
    explanation = ScoreExplanation(
        2.0,
        (TermPoints("tea", 0.75, 0.25), TermPoints("child", 0.5, 0.0, expands="kid")),
        semantic=0.5,
    )
    parser = _Cells()
    parser.feed(explanation._repr_html_())
    assert parser.rows == [
        ["term", "from", "text", "context", "points"],
        ["tea", "query", "0.750", "0.250", "1.000"],
        ["child", "expands kid", "0.500", "0.000", "0.500"],
        ["", "meaning", "", "", "0.500"],
        ["", "score", "", "", "2.000"],
    ]
    assert explanation.summary() == (
        "tea 1.00 (context 0.25) + meaning 0.50 + child (for kid) 0.50"
    )
