"""Results display as tables in Jupyter, with user text shown exactly as typed.

Each result type is rendered as HTML and as markdown (turned into HTML by a CommonMark
renderer, as Jupyter does); the text of every cell must then read exactly as the value
given: no markup taken from user text, no entity escaped twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from agentmem import (
    DataContent,
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryHit,
    MemoryHitList,
    MemoryRecord,
    MemoryRecordList,
    Message,
    MessageList,
    Session,
    SessionList,
    StateRounds,
    TextContent,
)
from agentmem.schemas.display import Column, Table

HOSTILE = "**not bold** <b>x</b> &amp; $x^2$ `tick` | [link](http://example.com) \\ _i_"
HOSTILE_ID = "id<with>&chars`|"
WHEN = datetime(2025, 6, 1, 9, 30, 12, tzinfo=UTC)


class Rendered(HTMLParser):
    """The text of an HTML fragment (blocks on lines of their own), the text of its
    table cells by row, and every tag seen."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self.text = ""
        self._in_cell = False
        self.feed(fragment)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self._in_cell = True
        elif tag == "br":
            self._add("\n")
        elif tag in ("p", "div", "table"):
            self.text += "\n"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        # Outside cells, only text in blocks counts: not the renderer's line breaks
        # between tags.
        if self._in_cell or data.strip():
            self._add(data)

    def _add(self, data: str) -> None:
        self.text += data
        if self._in_cell:
            self.rows[-1][-1] += data


def markdown_as_html(markdown: str) -> str:
    """What Jupyter's markdown renderer makes of it (CommonMark with tables and HTML)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def both(displayed: Any) -> list[Rendered]:
    """The object's HTML and its markdown, each as rendered HTML."""
    return [
        Rendered(displayed._repr_html_()),
        Rendered(markdown_as_html(displayed._repr_markdown_())),
    ]


def hostile_message(**fields: Any) -> Message:
    return Message(role="user", content=[TextContent(text=HOSTILE)], id=HOSTILE_ID, **fields)


def test_a_table_shows_every_value_as_typed() -> None:
    table = Table(
        [Column("n", "number"), Column("text"), Column("id", "code")],
        [["1", HOSTILE, HOSTILE_ID], ["2", "two\nlines", ""]],
    )
    for rendered in (Rendered(table.html()), Rendered(markdown_as_html(table.markdown()))):
        assert rendered.rows == [
            ["n", "text", "id"],
            ["1", HOSTILE, HOSTILE_ID],
            ["2", "two\nlines", ""],
        ]
        assert {"strong", "em", "b", "a"}.isdisjoint(rendered.tags)
        assert rendered.tags.count("code") == 1


def test_tables_are_kept_from_mathjax() -> None:
    html = Table([Column("text")], [["$x$"]]).html()
    assert 'class="tex2jax_ignore mathjax_ignore"' in html
    # In markdown the dollar signs are escaped, which Jupyter's math parser respects.
    assert "\\$x\\$" in Table([Column("text")], [["$x$"]]).markdown()


def test_an_empty_table_says_so() -> None:
    table = Table([Column("text")], [], empty="No hits.", caption="Hits for <you>")
    for rendered in (Rendered(table.html()), Rendered(markdown_as_html(table.markdown()))):
        lines = [line.strip() for line in rendered.text.split("\n") if line.strip()]
        assert lines == ["Hits for <you>", "No hits."]
        assert "table" not in rendered.tags


def test_a_message_shows_role_text_parts_and_id() -> None:
    message = Message(
        role="user", content=[TextContent(text=HOSTILE), DataContent(data={})], id=HOSTILE_ID
    )
    for rendered in both(message):
        assert rendered.rows == [
            ["role", "text", "id"],
            ["user", f"{HOSTILE}\n[data]", HOSTILE_ID],
        ]


def test_hits_show_rank_score_session_time_and_text() -> None:
    hits = MemoryHitList(
        MemoryHit(message=hostile_message(), session_id=HOSTILE_ID, created_at=WHEN, score=s)
        for s in (2.5, 1.25)
    )
    for rendered in both(hits):
        assert rendered.rows == [
            ["rank", "score", "session", "time (UTC)", "text"],
            ["1", "2.500", HOSTILE_ID, "2025-06-01 09:30:12", HOSTILE],
            ["2", "1.250", HOSTILE_ID, "2025-06-01 09:30:12", HOSTILE],
        ]
        assert {"strong", "em", "b", "a"}.isdisjoint(rendered.tags)
    # A hit on its own has no rank to show.
    for rendered in both(hits[1]):
        assert rendered.rows == [
            ["score", "session", "time (UTC)", "text"],
            ["1.250", HOSTILE_ID, "2025-06-01 09:30:12", HOSTILE],
        ]


def test_records_sessions_and_rounds_show_as_tables() -> None:
    record = MemoryRecord(message=hostile_message(), session_id="s", created_at=WHEN)
    for rendered in both(MemoryRecordList([record])):
        assert rendered.rows == [
            ["#", "session", "time (UTC)", "text"],
            ["1", "s", "2025-06-01 09:30:12", HOSTILE],
        ]
    for rendered in both(record):
        assert rendered.rows[1] == ["s", "2025-06-01 09:30:12", HOSTILE]
    for rendered in both(SessionList([Session(id=HOSTILE_ID, user_id="alice")])):
        assert rendered.rows == [["#", "session", "user"], ["1", HOSTILE_ID, "alice"]]
    session = Session(id=HOSTILE_ID, user_id="alice", messages=[hostile_message()])
    for rendered in both(session):
        assert rendered.text.strip().startswith(f"Session {HOSTILE_ID} of user alice: 1 message")
        assert rendered.rows[1] == ["1", "user", HOSTILE, HOSTILE_ID]
    for rendered in both(StateRounds([1, 2], user_id="alice", session_id="chat")):
        assert rendered.text.strip().startswith("State rounds of session chat of user alice")
        assert rendered.rows == [["round"], ["1"], ["2"]]


@pytest.mark.parametrize(
    ("empty", "says"),
    [
        (MemoryHitList(), "No hits."),
        (MemoryRecordList(), "No memories."),
        (MessageList(), "No messages."),
        (SessionList(), "No sessions."),
    ],
)
def test_empty_results_say_so(empty: Any, says: str) -> None:
    assert empty == []
    for rendered in both(empty):
        assert rendered.text.strip() == says


async def test_services_return_the_display_lists() -> None:
    memory = InMemoryMemoryService()
    await memory.add_memory("alice", {"role": "user", "content": HOSTILE}, session_id="s")
    hits = await memory.search_memory_hits("alice", "bold link")
    assert isinstance(hits, MemoryHitList) and len(hits) == 1
    assert isinstance(await memory.search_memory("alice", "bold"), MessageList)
    assert isinstance(await memory.list_memory("alice"), MessageList)
    assert isinstance(await memory.list_memory_records("alice"), MemoryRecordList)
    assert await memory.search_memory_hits("alice", "") == []

    sessions = InMemorySessionHistoryService()
    await sessions.create_session("alice", "s")
    assert isinstance(await sessions.list_sessions("alice"), SessionList)

    states = InMemoryStateService()
    await states.save_state("alice", {"step": 1}, session_id="s")
    rounds = await states.list_states("alice", "s")
    assert isinstance(rounds, StateRounds) and rounds == [1]
    assert (rounds.user_id, rounds.session_id) == ("alice", "s")
    assert (await states.list_states("alice")).session_id == "default"
