"""Behaviour every :class:`~agentmem.MemoryService` backend must show.

The tests take the fixture ``memory_service``: a started service holding no memories,
which :func:`agentmem.testing.conformance_suite` provides.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from agentmem.errors import InvalidArgumentError, UnsupportedOperationError
from agentmem.limits import MAX_ID_LENGTH
from agentmem.schemas.agent_schemas import DataContent, Message, MessageType, TextContent
from agentmem.search.ranking import query_terms
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryService
from agentmem.testing.conformance._support import lacking, require, text_message, texts

__all__ = ["MemoryConformance"]

HOSTILE_IDS = [
    "*",
    "?",
    "[a-z]",
    "alice:x",
    "{alice}",
    "a b",
    "ünï©ødé 🧠",
    "x" * MAX_ID_LENGTH,
    " a ",
]


@pytest.mark.asyncio
class MemoryConformance:
    """The memory service tests; :func:`agentmem.testing.conformance_suite` runs them."""

    async def test_add_then_list_in_chronological_order(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory("u1", [text_message("first"), text_message("second")])
        await memory_service.add_memory("u1", [text_message("third")], session_id="s2")
        listed = await memory_service.list_memory("u1", {"page_size": 10, "page_num": 1})
        assert texts(listed) == ["first", "second", "third"]

    async def test_messages_as_dicts_are_accepted(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory(
            "u1", [{"role": "user", "content": [{"type": "text", "text": "dict message"}]}]
        )
        [stored] = await memory_service.list_memory("u1")
        assert isinstance(stored, Message)
        assert stored.get_text_content() == "dict message"
        assert stored.id.startswith("msg_")

    async def test_memory_message_fields_survive_storage(
        self, memory_service: MemoryService
    ) -> None:
        original = text_message("keep me", role="assistant", metadata={"source": "chat", "n": 3})
        await memory_service.add_memory("u1", [original])
        [stored] = await memory_service.list_memory("u1")
        assert stored.model_dump() == original.model_dump()

    async def test_pagination(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message(f"m{i}") for i in range(7)])
        pages = [
            texts(await memory_service.list_memory("u1", {"page_num": n, "page_size": 3}))
            for n in (1, 2, 3, 4)
        ]
        assert pages == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"], []]

    async def test_list_defaults_to_first_page_of_ten(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message(f"m{i}") for i in range(12)])
        assert texts(await memory_service.list_memory("u1")) == [f"m{i}" for i in range(10)]

    async def test_list_by_session(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.LIST_BY_SESSION)
        await memory_service.add_memory("u1", [text_message("a1")], session_id="a")
        await memory_service.add_memory("u1", [text_message("b1")], session_id="b")
        await memory_service.add_memory("u1", [text_message("a2")], session_id="a")
        assert texts(await memory_service.list_memory("u1", {"session_id": "a"})) == ["a1", "a2"]

    @pytest.mark.parametrize(
        "filters",
        [{"page_num": 0}, {"page_size": 0}, {"page_num": -1}, {"page_size": "10"}, {"page": 1}],
    )
    async def test_invalid_list_filters_are_rejected(
        self, memory_service: MemoryService, filters: dict[str, object]
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await memory_service.list_memory("u1", filters)
        assert raised.value.field.startswith("filters")

    async def test_list_of_unknown_user_is_empty(self, memory_service: MemoryService) -> None:
        assert await memory_service.list_memory("nobody") == []
        assert await memory_service.list_memory_records("nobody") == []

    async def test_list_memory_records_carry_session_and_time(
        self, memory_service: MemoryService
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        await memory_service.add_memory(
            "u1", [text_message("a1"), text_message("a2")], session_id="a"
        )
        await memory_service.add_memory("u1", [text_message("d1")])
        after = datetime.now(UTC) + timedelta(seconds=1)
        records = await memory_service.list_memory_records("u1")
        assert [(record.session_id, record.message.get_text_content()) for record in records] == [
            ("a", "a1"),
            ("a", "a2"),
            ("default", "d1"),
        ]
        assert all(before <= record.created_at <= after for record in records)
        assert records[0].created_at <= records[2].created_at
        listed = await memory_service.list_memory("u1")
        assert [record.message for record in records] == listed
        second_page = await memory_service.list_memory_records(
            "u1", {"page_num": 2, "page_size": 2}
        )
        assert [(record.session_id, record.message.id) for record in second_page] == [
            ("default", records[2].message.id)
        ]

    async def test_list_memory_records_by_session(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.LIST_BY_SESSION)
        await memory_service.add_memory("u1", [text_message("a1")], session_id="a")
        await memory_service.add_memory("u1", [text_message("b1")], session_id="b")
        records = await memory_service.list_memory_records("u1", {"session_id": "b"})
        assert [(record.session_id, record.message.get_text_content()) for record in records] == [
            ("b", "b1")
        ]

    async def test_memory_session_ids_in_order_first_used(
        self, memory_service: MemoryService
    ) -> None:
        require(memory_service, Capability.LIST_SESSIONS)
        await memory_service.add_memory("u1", [text_message("b1")], session_id="b")
        await memory_service.add_memory("u1", [text_message("a1")], session_id="a")
        await memory_service.add_memory("u1", [text_message("d1")])
        await memory_service.add_memory("u1", [text_message("b2")], session_id="b")
        await memory_service.add_memory("u2", [text_message("other")], session_id="z")
        assert await memory_service.list_session_ids("u1") == ["b", "a", "default"]
        assert await memory_service.list_session_ids("nobody") == []

    async def test_memory_session_ids_forget_deleted_sessions(
        self, memory_service: MemoryService
    ) -> None:
        require(memory_service, Capability.LIST_SESSIONS)
        require(memory_service, Capability.DELETE_BY_SESSION)
        await memory_service.add_memory("u1", [text_message("a1")], session_id="a")
        await memory_service.add_memory("u1", [text_message("b1")], session_id="b")
        await memory_service.delete_memory("u1", "a")
        assert await memory_service.list_session_ids("u1") == ["b"]
        await memory_service.delete_memory("u1")
        assert await memory_service.list_session_ids("u1") == []

    async def test_search_finds_matching_memory_case_insensitively(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory(
            "u1", [text_message("My favourite colour is BLUE"), text_message("I live in Paris")]
        )
        found = await memory_service.search_memory(
            "u1", [text_message("what colour do I like? blue")]
        )
        assert texts(found) == ["My favourite colour is BLUE"]

    async def test_search_uses_the_last_message_as_query(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory("u1", [text_message("apples"), text_message("bananas")])
        query = [text_message("apples"), text_message("bananas")]
        assert texts(await memory_service.search_memory("u1", query)) == ["bananas"]

    async def test_search_ranks_by_relevance(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.RANKED_SEARCH)
        await memory_service.add_memory(
            "u1",
            [
                text_message("The dog barked at the mailman"),
                text_message("My dog Rex loves the park and my dog sleeps a lot"),
                text_message("We visited the park yesterday"),
                text_message("Completely unrelated words here"),
            ],
        )
        found = texts(
            await memory_service.search_memory("u1", "where does my dog Rex play in the park")
        )
        assert found[0] == "My dog Rex loves the park and my dog sleeps a lot"
        assert "Completely unrelated words here" not in found
        assert set(found[1:]) == {"The dog barked at the mailman", "We visited the park yesterday"}

    async def test_explained_scores_add_up_and_name_text_and_context(
        self, memory_service: MemoryService
    ) -> None:
        require(memory_service, Capability.RANKED_SEARCH)
        await memory_service.add_memory(
            "u1",
            [
                text_message("What did you paint last weekend?"),
                text_message("A sunrise over the lake, I paint it every summer"),
                text_message("Lovely!"),
                text_message("The lake froze in winter"),
            ],
        )
        query = "what did you paint by the lake?"
        hits = await memory_service.search_memory_hits("u1", query, explain=True)
        plain = await memory_service.search_memory_hits("u1", query)
        assert [(hit.message.id, hit.score) for hit in hits] == [
            (hit.message.id, hit.score) for hit in plain
        ]
        assert all(hit.explanation is None for hit in plain)
        for hit in hits:
            explanation = hit.explanation
            assert explanation is not None and explanation.score == hit.score
            parts = [part.points for part in explanation.terms]
            parts += [explanation.semantic, explanation.speaker]
            assert math.fsum(parts) == pytest.approx(hit.score, rel=1e-9, abs=1e-12)
            assert {part.term for part in explanation.terms} <= set(query_terms(query))
        by_text = {hit.message.get_text_content(): hit.explanation for hit in hits}
        sunrise = by_text["A sunrise over the lake, I paint it every summer"]
        assert sunrise is not None
        paint = next(part for part in sunrise.terms if part.term == "paint")
        # It holds "paint" itself and next to the question holding it too.
        assert paint.text > 0 and paint.context > 0

    async def test_without_ranked_search_explaining_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.RANKED_SEARCH)
        await memory_service.add_memory("u1", [text_message("tea")])
        with pytest.raises(UnsupportedOperationError):
            await memory_service.search_memory_hits("u1", "tea", explain=True)

    async def test_plain_string_content_is_one_text_part(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory("u1", {"role": "user", "content": "I moved to Lisbon"})
        [stored] = await memory_service.list_memory("u1")
        assert [part.model_dump() for part in stored.content or ()] == [
            TextContent(text="I moved to Lisbon").model_dump()
        ]
        found = await memory_service.search_memory(
            "u1", [{"role": "user", "content": "Where is Lisbon?"}]
        )
        assert texts(found) == ["I moved to Lisbon"]

    async def test_search_ties_put_newer_first(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.RANKED_SEARCH)
        await memory_service.add_memory("u1", [text_message("coffee"), text_message("coffee")])
        hits = await memory_service.search_memory_hits("u1", "coffee")
        assert len(hits) == 2
        assert hits[0].score == pytest.approx(hits[1].score)
        listed = await memory_service.list_memory("u1")
        assert [hit.message.id for hit in hits] == [listed[1].id, listed[0].id]

    async def test_search_never_returns_messages_without_shared_terms(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory(
            "u1", [text_message("what is my name"), text_message("sailing on the lake")]
        )
        found = texts(await memory_service.search_memory("u1", "lake"))
        assert found == ["sailing on the lake"]

    async def test_stop_words_alone_match_nothing(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory(
            "u1", [text_message("What is my name? It is Ann."), text_message("my is what")]
        )
        assert await memory_service.search_memory("u1", "what is my") == []

    async def test_stemming_matches_other_forms(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("She was painting landscapes")])
        assert texts(await memory_service.search_memory("u1", "paints landscape")) == [
            "She was painting landscapes"
        ]

    async def test_search_top_k(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message(f"tea number {i}") for i in range(8)])
        assert len(await memory_service.search_memory("u1", "tea", {"top_k": 3})) == 3

    async def test_search_by_session(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("tea in a")], session_id="a")
        await memory_service.add_memory("u1", [text_message("tea in b")], session_id="b")
        hits = await memory_service.search_memory_hits("u1", "tea", {"session_id": "b"})
        assert [(hit.session_id, hit.message.get_text_content()) for hit in hits] == [
            ("b", "tea in b")
        ]

    async def test_search_hits_carry_score_session_and_time(
        self, memory_service: MemoryService
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        await memory_service.add_memory("u1", [text_message("green tea")], session_id="s")
        [hit] = await memory_service.search_memory_hits("u1", "tea")
        assert hit.score > 0
        assert hit.session_id == "s"
        assert before <= hit.created_at <= datetime.now(UTC) + timedelta(seconds=1)

    async def test_search_by_time_range(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("old tea")])
        await asyncio.sleep(0.05)
        middle = time.time()
        await asyncio.sleep(0.05)
        await memory_service.add_memory("u1", [text_message("new tea")])
        newer = await memory_service.search_memory("u1", "tea", {"start_time": middle})
        older = await memory_service.search_memory(
            "u1", "tea", {"end_time": datetime.fromtimestamp(middle, UTC)}
        )
        assert texts(newer) == ["new tea"]
        assert texts(older) == ["old tea"]

    async def test_search_by_metadata(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory(
            "u1",
            [
                text_message("tea at work", metadata={"place": "work"}),
                text_message("tea at home", metadata={"place": "home"}),
                text_message("tea somewhere"),
            ],
        )
        found = await memory_service.search_memory("u1", "tea", {"metadata": {"place": "home"}})
        assert texts(found) == ["tea at home"]

    async def test_search_min_score(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("tea"), text_message("tea and cake")])
        hits = await memory_service.search_memory_hits("u1", "cake tea")
        threshold = (hits[0].score + hits[1].score) / 2
        kept = await memory_service.search_memory_hits("u1", "cake tea", {"min_score": threshold})
        assert [hit.message.id for hit in kept] == [hits[0].message.id]

    @pytest.mark.parametrize(
        "filters",
        [{"top_k": 0}, {"top_k": "5"}, {"top_k": True}, {"topk": 5}, {"session_id": 3}, "top_k=5"],
    )
    async def test_invalid_search_filters_are_rejected(
        self, memory_service: MemoryService, filters: object
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await memory_service.search_memory("u1", "tea", filters)  # type: ignore[arg-type]
        assert raised.value.field.startswith("filters")

    async def test_search_with_empty_query_returns_nothing(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory("u1", [text_message("tea")])
        assert await memory_service.search_memory("u1", []) == []
        assert await memory_service.search_memory("u1", [Message(role="user", content=[])]) == []

    async def test_delete_one_session(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.DELETE_BY_SESSION)
        await memory_service.add_memory("u1", [text_message("tea a")], session_id="a")
        await memory_service.add_memory("u1", [text_message("tea b")], session_id="b")
        await memory_service.delete_memory("u1", "a")
        assert texts(await memory_service.list_memory("u1")) == ["tea b"]
        assert texts(await memory_service.search_memory("u1", "tea")) == ["tea b"]

    async def test_delete_all_of_a_user(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("tea a")], session_id="a")
        await memory_service.add_memory("u2", [text_message("tea other")])
        await memory_service.delete_memory("u1")
        assert await memory_service.list_memory("u1") == []
        assert await memory_service.search_memory("u1", "tea") == []
        assert texts(await memory_service.list_memory("u2")) == ["tea other"]

    async def test_delete_user_memory_deletes_every_session_of_the_user(
        self, memory_service: MemoryService
    ) -> None:
        await memory_service.add_memory("u1", [text_message("tea a")], session_id="a")
        await memory_service.add_memory("u1", [text_message("tea d")])
        await memory_service.add_memory("u2", [text_message("tea other")], session_id="a")
        await memory_service.delete_user_memory("u1")
        assert await memory_service.list_memory("u1") == []
        assert await memory_service.search_memory("u1", "tea") == []
        assert texts(await memory_service.list_memory("u2")) == ["tea other"]
        assert texts(await memory_service.search_memory("u2", "tea")) == ["tea other"]

    async def test_delete_missing_is_not_an_error(self, memory_service: MemoryService) -> None:
        await memory_service.delete_memory("nobody")
        await memory_service.delete_user_memory("nobody")
        if Capability.DELETE_BY_SESSION in memory_service.capabilities:
            await memory_service.delete_memory("nobody", "nothing")

    async def test_clear_all_memory_deletes_every_user(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.CLEAR_ALL)
        await memory_service.add_memory("u1", [text_message("tea one")], session_id="a")
        await memory_service.add_memory("u2", [text_message("tea two")])
        await memory_service.clear_all_memory()
        for user in ("u1", "u2"):
            assert await memory_service.list_memory(user) == []
            assert await memory_service.search_memory(user, "tea") == []
        await memory_service.add_memory("u1", [text_message("tea again")])
        assert texts(await memory_service.search_memory("u1", "tea")) == ["tea again"]

    async def test_get_query_text_is_the_first_text_part(
        self, memory_service: MemoryService
    ) -> None:
        message = Message(
            role="user",
            content=[
                DataContent(data={"k": 1}),
                TextContent(text="first"),
                TextContent(text="second"),
            ],
        )
        assert await memory_service.get_query_text(message) == "first"
        assert await memory_service.get_query_text(message.model_dump()) == "first"

    @pytest.mark.parametrize(
        "message",
        [
            None,
            Message(type=MessageType.FUNCTION_CALL, content=[TextContent(text="call")]),
            Message(role="user", content=[]),
            Message(role="user", content=[DataContent(data={"text": "not a text part"})]),
        ],
        ids=["none", "not-a-message-type", "no-content", "no-text-part"],
    )
    async def test_get_query_text_without_a_text_part_is_empty(
        self, memory_service: MemoryService, message: Message | None
    ) -> None:
        assert await memory_service.get_query_text(message) == ""

    async def test_get_query_text_rejects_what_is_not_a_message(
        self, memory_service: MemoryService
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await memory_service.get_query_text(42)  # type: ignore[arg-type]
        assert raised.value.field == "message"

    async def test_a_retried_add_stores_each_message_once(
        self, memory_service: MemoryService
    ) -> None:
        require(memory_service, Capability.IDEMPOTENT_WRITES)
        batch = [text_message("tea first"), text_message("tea second")]
        await memory_service.add_memory("u1", batch, session_id="s")
        await memory_service.add_memory("u1", [*batch, text_message("tea third")], session_id="s")
        # The same message in another session is another memory.
        await memory_service.add_memory("u1", batch[:1], session_id="t")
        listed = await memory_service.list_memory("u1", {"session_id": "s"})
        assert texts(listed) == ["tea first", "tea second", "tea third"]
        assert len(await memory_service.list_memory("u1")) == 4
        assert len(await memory_service.search_memory("u1", "tea")) == 4

    async def test_created_at_is_stored(self, memory_service: MemoryService) -> None:
        require(memory_service, Capability.CREATION_TIME)
        given = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
        await memory_service.add_memory(
            "u1", [text_message("tea given")], session_id="s", created_at=given
        )
        await memory_service.add_memory(
            "u1", [text_message("tea seconds")], created_at=given.timestamp() - 86400
        )
        # A naive datetime means UTC.
        await memory_service.add_memory(
            "u1", [text_message("tea naive")], created_at=datetime(2021, 6, 1, 12, 0, 0)
        )
        records = await memory_service.list_memory_records("u1")
        assert {record.message.get_text_content(): record.created_at for record in records} == {
            "tea given": given,
            "tea seconds": given - timedelta(days=1),
            "tea naive": datetime(2021, 6, 1, 12, 0, 0, tzinfo=UTC),
        }
        before_2021 = await memory_service.search_memory(
            "u1", "tea", {"end_time": datetime(2021, 1, 1, tzinfo=UTC)}
        )
        assert sorted(texts(before_2021)) == ["tea given", "tea seconds"]

    async def test_without_creation_time_created_at_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.CREATION_TIME)
        with pytest.raises(UnsupportedOperationError):
            await memory_service.add_memory("u1", [text_message("tea")], created_at=0.0)
        assert await memory_service.list_memory("u1") == []

    async def test_without_clear_all_clear_all_memory_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.CLEAR_ALL)
        await memory_service.add_memory("u1", [text_message("tea")])
        with pytest.raises(UnsupportedOperationError):
            await memory_service.clear_all_memory()
        assert texts(await memory_service.list_memory("u1")) == ["tea"]

    async def test_without_list_sessions_list_session_ids_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.LIST_SESSIONS)
        with pytest.raises(UnsupportedOperationError):
            await memory_service.list_session_ids("u1")

    async def test_without_list_by_session_listing_a_session_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.LIST_BY_SESSION)
        with pytest.raises(UnsupportedOperationError):
            await memory_service.list_memory("u1", {"session_id": "a"})

    async def test_without_delete_by_session_deleting_a_session_is_refused(
        self, memory_service: MemoryService
    ) -> None:
        lacking(memory_service, Capability.DELETE_BY_SESSION)
        await memory_service.add_memory("u1", [text_message("tea")], session_id="a")
        with pytest.raises(UnsupportedOperationError):
            await memory_service.delete_memory("u1", "a")
        assert texts(await memory_service.list_memory("u1")) == ["tea"]

    async def test_default_session_is_named_default(self, memory_service: MemoryService) -> None:
        await memory_service.add_memory("u1", [text_message("tea")])
        [hit] = await memory_service.search_memory_hits("u1", "tea")
        assert hit.session_id == "default"

    @pytest.mark.parametrize("bad_user", ["", "   ", None, 5, b"u1"])
    async def test_memory_bad_user_id_is_rejected(
        self, memory_service: MemoryService, bad_user: object
    ) -> None:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: memory_service.add_memory(bad_user, [text_message("x")]),  # type: ignore[arg-type]
            lambda: memory_service.search_memory(bad_user, "x"),  # type: ignore[arg-type]
            lambda: memory_service.list_memory(bad_user),  # type: ignore[arg-type]
        ]
        for call in calls:
            with pytest.raises(InvalidArgumentError) as raised:
                await call()
            assert raised.value.field == "user_id"

    @pytest.mark.parametrize(
        "bad_messages",
        [
            "plain string",
            42,
            [text_message("ok"), "not a message"],
            [text_message("ok"), {"role": "user", "content": [{"type": "nope"}]}],
        ],
    )
    async def test_bad_messages_store_nothing(
        self, memory_service: MemoryService, bad_messages: object
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await memory_service.add_memory("u1", bad_messages)  # type: ignore[arg-type]
        assert raised.value.field.startswith("messages")
        assert await memory_service.list_memory("u1") == []

    async def test_stored_memories_are_copies(self, memory_service: MemoryService) -> None:
        message = text_message("tea")
        await memory_service.add_memory("u1", [message])
        message.content[0].text = "changed"  # type: ignore[index,union-attr]
        [listed] = await memory_service.list_memory("u1")
        listed.content[0].text = "changed again"  # type: ignore[index,union-attr]
        assert texts(await memory_service.list_memory("u1")) == ["tea"]

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    async def test_hostile_user_ids_never_see_other_users_memories(
        self, memory_service: MemoryService, hostile: str
    ) -> None:
        await memory_service.add_memory("alice", [text_message("alice secret tea")], session_id="s")
        await memory_service.add_memory(hostile, [text_message("hostile tea")], session_id=hostile)
        assert texts(await memory_service.list_memory(hostile)) == ["hostile tea"]
        assert texts(await memory_service.search_memory(hostile, "secret tea")) == ["hostile tea"]
        assert texts(await memory_service.list_memory("alice")) == ["alice secret tea"]
        await memory_service.delete_memory(hostile)
        assert texts(await memory_service.list_memory("alice")) == ["alice secret tea"]

    async def test_concurrent_adds_lose_nothing(self, memory_service: MemoryService) -> None:
        await asyncio.gather(
            *(
                memory_service.add_memory("u1", [text_message(f"note {i}")], session_id="s")
                for i in range(200)
            )
        )
        listed = await memory_service.list_memory("u1", {"page_size": 1000})
        assert sorted(texts(listed)) == sorted(f"note {i}" for i in range(200))

    async def test_memory_health_when_started(self, memory_service: MemoryService) -> None:
        assert await memory_service.health() is True
