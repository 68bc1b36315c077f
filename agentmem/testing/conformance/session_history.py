"""Behaviour every :class:`~agentmem.SessionHistoryService` backend must show.

The tests take the fixture ``session_service``: a started service holding no sessions,
which :func:`agentmem.testing.conformance_suite` provides.
"""

from __future__ import annotations

import asyncio

import pytest

from agentmem.errors import InvalidArgumentError
from agentmem.limits import MAX_ID_LENGTH
from agentmem.schemas.agent_schemas import Message, TextContent
from agentmem.schemas.session import Session
from agentmem.services.base import Capability
from agentmem.services.session_history.session_history_service import SessionHistoryService
from agentmem.testing.conformance._support import require, text_message, texts

__all__ = ["SessionHistoryConformance"]

HOSTILE_IDS = ["*", "?", "[a-z]", "alice:x", "{alice}", "ünï©ødé 🧠", "x" * MAX_ID_LENGTH]


@pytest.mark.asyncio
class SessionHistoryConformance:
    """The session history tests; :func:`agentmem.testing.conformance_suite` runs them."""

    async def test_create_with_generated_id(self, session_service: SessionHistoryService) -> None:
        session = await session_service.create_session("u1")
        assert session.user_id == "u1"
        assert session.id
        assert session.messages == []

    @pytest.mark.parametrize("blank", ["", "   ", None])
    async def test_blank_session_id_gets_a_new_one(
        self, session_service: SessionHistoryService, blank: str | None
    ) -> None:
        first = await session_service.create_session("u1", blank)
        second = await session_service.create_session("u1", blank)
        assert first.id.strip() and second.id.strip()
        assert first.id != second.id

    async def test_create_with_custom_id(self, session_service: SessionHistoryService) -> None:
        session = await session_service.create_session("u1", "custom")
        assert session.id == "custom"
        assert (await session_service.get_session("u1", "custom")).id == "custom"

    async def test_append_and_get(self, session_service: SessionHistoryService) -> None:
        session = await session_service.create_session("u1")
        await session_service.append_message(session, text_message("hello"))
        await session_service.append_message(
            session,
            [
                {"role": "user", "content": [{"type": "text", "text": "how are you?"}]},
                text_message("fine", role="assistant"),
            ],
        )
        assert texts(session.messages) == ["hello", "how are you?", "fine"]
        stored = await session_service.get_session("u1", session.id)
        assert texts(stored.messages) == ["hello", "how are you?", "fine"]
        assert all(isinstance(message, Message) for message in stored.messages)
        assert [m.role for m in stored.messages] == ["user", "user", "assistant"]

    async def test_plain_string_content_is_one_text_part(
        self, session_service: SessionHistoryService
    ) -> None:
        session = await session_service.create_session("u1")
        await session_service.append_message(session, {"role": "user", "content": "hello"})
        stored = await session_service.get_session("u1", session.id)
        assert [part.model_dump() for part in stored.messages[0].content or ()] == [
            TextContent(text="hello").model_dump()
        ]

    async def test_session_message_fields_survive_storage(
        self, session_service: SessionHistoryService
    ) -> None:
        session = await session_service.create_session("u1")
        original = text_message("kept", role="assistant", metadata={"k": [1, 2]}, usage={"t": 3})
        await session_service.append_message(session, original)
        stored = await session_service.get_session("u1", session.id)
        assert stored.messages[0].model_dump() == original.model_dump()

    async def test_unknown_session_reads_as_empty_and_is_not_stored(
        self, session_service: SessionHistoryService
    ) -> None:
        session = await session_service.get_session("u1", "never-created")
        assert session == Session(id="never-created", user_id="u1")
        assert await session_service.list_sessions("u1") == []

    async def test_append_stores_a_session_not_created_before(
        self, session_service: SessionHistoryService
    ) -> None:
        await session_service.append_message(Session(id="fresh", user_id="u1"), text_message("hi"))
        assert texts((await session_service.get_session("u1", "fresh")).messages) == ["hi"]
        assert [s.id for s in await session_service.list_sessions("u1")] == ["fresh"]

    async def test_list_sessions_without_messages(
        self, session_service: SessionHistoryService
    ) -> None:
        first = await session_service.create_session("u1", "one")
        await session_service.create_session("u1", "two")
        await session_service.create_session("u2", "other")
        await session_service.append_message(first, text_message("hello"))
        listed = await session_service.list_sessions("u1")
        assert sorted(s.id for s in listed) == ["one", "two"]
        assert all(s.messages == [] and s.user_id == "u1" for s in listed)

    async def test_a_retried_append_stores_each_message_once(
        self, session_service: SessionHistoryService
    ) -> None:
        require(session_service, Capability.IDEMPOTENT_WRITES)
        first, second = text_message("first"), text_message("second")
        await session_service.append_message(Session(id="s", user_id="u1"), [first, second])
        await session_service.append_message(Session(id="s", user_id="u1"), [second, first])
        await session_service.append_message(Session(id="s", user_id="u1"), text_message("third"))
        stored = await session_service.get_session("u1", "s")
        assert texts(stored.messages) == ["first", "second", "third"]

    async def test_delete_session(self, session_service: SessionHistoryService) -> None:
        session = await session_service.create_session("u1")
        await session_service.append_message(session, text_message("bye"))
        await session_service.delete_session("u1", session.id)
        assert (await session_service.get_session("u1", session.id)).messages == []
        assert await session_service.list_sessions("u1") == []
        await session_service.delete_session("u1", "non_existent_id")

    async def test_delete_user_sessions_deletes_every_session_of_the_user(
        self, session_service: SessionHistoryService
    ) -> None:
        for session_id in ("one", "two"):
            session = await session_service.create_session("u1", session_id)
            await session_service.append_message(session, text_message(f"in {session_id}"))
        other = await session_service.create_session("u2", "one")
        await session_service.append_message(other, text_message("other user"))
        await session_service.delete_user_sessions("u1")
        assert await session_service.list_sessions("u1") == []
        assert (await session_service.get_session("u1", "one")).messages == []
        assert (await session_service.get_session("u1", "two")).messages == []
        assert [s.id for s in await session_service.list_sessions("u2")] == ["one"]
        assert texts((await session_service.get_session("u2", "one")).messages) == ["other user"]
        await session_service.delete_user_sessions("nobody")

    async def test_returned_sessions_are_copies(
        self, session_service: SessionHistoryService
    ) -> None:
        session = await session_service.create_session("u1", "s")
        await session_service.append_message(session, text_message("kept"))
        fetched = await session_service.get_session("u1", "s")
        fetched.messages.clear()
        session.messages.clear()
        assert texts((await session_service.get_session("u1", "s")).messages) == ["kept"]

    @pytest.mark.parametrize("bad", ["not a message", 7, [{"role": "user", "content": "x"}]])
    async def test_bad_messages_append_nothing(
        self, session_service: SessionHistoryService, bad: object
    ) -> None:
        session = await session_service.create_session("u1", "s")
        await session_service.append_message(session, text_message("ok"))
        with pytest.raises(InvalidArgumentError) as raised:
            await session_service.append_message(session, [text_message("x"), bad])  # type: ignore[list-item]
        assert raised.value.field.startswith("message")
        assert texts(session.messages) == ["ok"]
        assert texts((await session_service.get_session("u1", "s")).messages) == ["ok"]

    async def test_append_requires_a_session(self, session_service: SessionHistoryService) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await session_service.append_message({"id": "s"}, text_message("x"))  # type: ignore[arg-type]
        assert raised.value.field == "session"

    @pytest.mark.parametrize("bad_user", ["", " ", None, 1])
    async def test_session_bad_user_id_is_rejected(
        self, session_service: SessionHistoryService, bad_user: object
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await session_service.create_session(bad_user)  # type: ignore[arg-type]
        assert raised.value.field == "user_id"
        with pytest.raises(InvalidArgumentError) as raised:
            await session_service.list_sessions(bad_user)  # type: ignore[arg-type]
        assert raised.value.field == "user_id"

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    async def test_hostile_ids_never_see_other_users_sessions(
        self, session_service: SessionHistoryService, hostile: str
    ) -> None:
        alice = await session_service.create_session("alice", "s")
        await session_service.append_message(alice, text_message("alice secret"))
        mine = await session_service.create_session(hostile, hostile)
        await session_service.append_message(mine, text_message("mine"))
        assert [s.id for s in await session_service.list_sessions(hostile)] == [hostile]
        assert (await session_service.get_session(hostile, "s")).messages == []
        await session_service.delete_session(hostile, "s")
        assert texts((await session_service.get_session("alice", "s")).messages) == ["alice secret"]
        assert [s.id for s in await session_service.list_sessions("alice")] == ["s"]

    async def test_concurrent_appends_lose_nothing(
        self, session_service: SessionHistoryService
    ) -> None:
        session = await session_service.create_session("u1", "busy")
        await asyncio.gather(
            *(
                session_service.append_message(
                    Session(id="busy", user_id="u1"), text_message(f"m{i}")
                )
                for i in range(200)
            )
        )
        stored = await session_service.get_session("u1", session.id)
        assert sorted(texts(stored.messages)) == sorted(f"m{i}" for i in range(200))

    async def test_session_history_health_when_started(
        self, session_service: SessionHistoryService
    ) -> None:
        assert await session_service.health() is True
