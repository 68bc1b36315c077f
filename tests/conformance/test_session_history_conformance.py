"""Behaviour every SessionHistoryService backend must show."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from agentmem.limits import MAX_ID_LENGTH
from agentmem import Message, Session, SessionHistoryService
from tests.helpers import text_message, texts

HOSTILE_IDS = ["*", "?", "[a-z]", "alice:x", "{alice}", "ünï©ødé 🧠", "x" * MAX_ID_LENGTH]


async def test_create_with_generated_id(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1")
    assert session.user_id == "u1"
    assert session.id
    assert session.messages == []


@pytest.mark.parametrize("blank", ["", "   ", None])
async def test_blank_session_id_gets_a_new_one(
    session_service: SessionHistoryService, blank: str | None
) -> None:
    first = await session_service.create_session("u1", blank)
    second = await session_service.create_session("u1", blank)
    assert first.id.strip() and second.id.strip()
    assert first.id != second.id


async def test_create_with_custom_id(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1", "custom")
    assert session.id == "custom"
    assert (await session_service.get_session("u1", "custom")).id == "custom"


async def test_append_and_get(session_service: SessionHistoryService) -> None:
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


async def test_message_fields_survive_storage(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1")
    original = text_message("kept", role="assistant", metadata={"k": [1, 2]}, usage={"t": 3})
    await session_service.append_message(session, original)
    stored = await session_service.get_session("u1", session.id)
    assert stored.messages[0].model_dump() == original.model_dump()


async def test_unknown_session_reads_as_empty_and_is_not_stored(
    session_service: SessionHistoryService,
) -> None:
    session = await session_service.get_session("u1", "never-created")
    assert session == Session(id="never-created", user_id="u1")
    assert await session_service.list_sessions("u1") == []


async def test_append_stores_a_session_not_created_before(
    session_service: SessionHistoryService,
) -> None:
    await session_service.append_message(Session(id="fresh", user_id="u1"), text_message("hi"))
    assert texts((await session_service.get_session("u1", "fresh")).messages) == ["hi"]
    assert [s.id for s in await session_service.list_sessions("u1")] == ["fresh"]


async def test_list_sessions_without_messages(session_service: SessionHistoryService) -> None:
    first = await session_service.create_session("u1", "one")
    await session_service.create_session("u1", "two")
    await session_service.create_session("u2", "other")
    await session_service.append_message(first, text_message("hello"))
    listed = await session_service.list_sessions("u1")
    assert sorted(s.id for s in listed) == ["one", "two"]
    assert all(s.messages == [] and s.user_id == "u1" for s in listed)


async def test_delete_session(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1")
    await session_service.append_message(session, text_message("bye"))
    await session_service.delete_session("u1", session.id)
    assert (await session_service.get_session("u1", session.id)).messages == []
    assert await session_service.list_sessions("u1") == []
    await session_service.delete_session("u1", "non_existent_id")


async def test_returned_sessions_are_copies(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1", "s")
    await session_service.append_message(session, text_message("kept"))
    fetched = await session_service.get_session("u1", "s")
    fetched.messages.clear()
    session.messages.clear()
    assert texts((await session_service.get_session("u1", "s")).messages) == ["kept"]


@pytest.mark.parametrize("bad", ["not a message", 7, [{"role": "user", "content": "x"}]])
async def test_bad_messages_append_nothing(
    session_service: SessionHistoryService, bad: object
) -> None:
    session = await session_service.create_session("u1", "s")
    await session_service.append_message(session, text_message("ok"))
    with pytest.raises((TypeError, ValidationError)):
        await session_service.append_message(session, [text_message("x"), bad])  # type: ignore[list-item]
    assert texts((await session_service.get_session("u1", "s")).messages) == ["ok"]


async def test_append_requires_a_session(session_service: SessionHistoryService) -> None:
    with pytest.raises(TypeError):
        await session_service.append_message({"id": "s"}, text_message("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_user", ["", " ", None, 1])
async def test_bad_user_id_is_rejected(
    session_service: SessionHistoryService, bad_user: object
) -> None:
    with pytest.raises((ValueError, TypeError)):
        await session_service.create_session(bad_user)  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError)):
        await session_service.list_sessions(bad_user)  # type: ignore[arg-type]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_hostile_ids_never_see_other_users(
    session_service: SessionHistoryService, hostile: str
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


async def test_concurrent_appends_lose_nothing(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("u1", "busy")
    await asyncio.gather(
        *(
            session_service.append_message(Session(id="busy", user_id="u1"), text_message(f"m{i}"))
            for i in range(200)
        )
    )
    stored = await session_service.get_session("u1", session.id)
    assert sorted(texts(stored.messages)) == sorted(f"m{i}" for i in range(200))


async def test_health(session_service: SessionHistoryService) -> None:
    assert await session_service.health() is True
