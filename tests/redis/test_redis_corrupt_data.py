"""Data agentmem did not write (planted, damaged) raises CorruptDataError; nothing else is lost.

The documented behaviour of every Redis service: reading an entry that cannot be decoded
raises :class:`agentmem.CorruptDataError` naming it; other users and sessions stay
readable and writable.
"""

from __future__ import annotations

import pytest

from agentmem import CorruptDataError, Session
from agentmem.services._redis import encode_id
from tests.helpers import text_message, texts
from tests.redis.conftest import Services


def _key(services: Services, user_id: str, *parts: str) -> str:
    return f"{services.prefix}:{{{encode_id(user_id)}}}:" + ":".join(parts)


async def test_a_corrupt_message_in_a_session(services: Services) -> None:
    sessions = await services.sessions()
    await sessions.append_message(Session(id="bad", user_id="u1"), text_message("fine"))
    await sessions.append_message(Session(id="good", user_id="u1"), text_message("kept"))
    await services.raw.rpush(_key(services, "u1", "hist", "messages", encode_id("bad")), "{oops")
    with pytest.raises(CorruptDataError, match="bad"):
        await sessions.get_session("u1", "bad")
    assert texts((await sessions.get_session("u1", "good")).messages) == ["kept"]
    assert [s.id for s in await sessions.list_sessions("u1")] == ["bad", "good"]
    await sessions.delete_session("u1", "bad")
    assert (await sessions.get_session("u1", "bad")).messages == []


async def test_a_corrupt_memory(services: Services) -> None:
    memory = await services.memory()
    await memory.add_memory("u1", [text_message("tea"), text_message("cake")])
    await memory.add_memory("u2", [text_message("tea")])
    await services.raw.hset(_key(services, "u1", "mem", "docs"), "2", '{"content": 5}')
    with pytest.raises(CorruptDataError):
        await memory.list_memory("u1")
    assert texts(await memory.search_memory("u1", "tea")) == ["tea"]
    with pytest.raises(CorruptDataError):
        await memory.search_memory("u1", "cake")
    assert texts(await memory.list_memory("u2")) == ["tea"]
    await memory.delete_memory("u1")
    assert await memory.list_memory("u1") == []


async def test_a_corrupt_index_entry(services: Services) -> None:
    memory = await services.memory()
    await memory.add_memory("u1", [text_message("tea")])
    await services.raw.hset(_key(services, "u1", "mem", "terms"), "tea", "garbage")
    with pytest.raises(CorruptDataError):
        await memory.search_memory("u1", "tea")
    assert texts(await memory.list_memory("u1")) == ["tea"]


async def test_a_corrupt_state(services: Services) -> None:
    states = await services.states()
    await states.save_state("u1", {"v": 1}, session_id="s")
    await states.save_state("u1", {"v": 2}, session_id="s")
    await services.raw.hset(_key(services, "u1", "state", "states", encode_id("s")), "2", "[1,")
    with pytest.raises(CorruptDataError):
        await states.export_state("u1", "s")
    assert await states.export_state("u1", "s", round_id=1) == {"v": 1}
    assert await states.list_states("u1", "s") == [1, 2]
    assert await states.save_state("u1", {"v": 3}, session_id="s") == 3


async def test_a_key_of_the_wrong_type(services: Services) -> None:
    memory = await services.memory()
    sessions = await services.sessions()
    await services.raw.set(_key(services, "u1", "mem", "order"), "not a sorted set")
    await services.raw.set(_key(services, "u1", "hist", "index"), "not a sorted set")
    with pytest.raises(CorruptDataError, match="WRONGTYPE"):
        await memory.list_memory("u1")
    with pytest.raises(CorruptDataError, match="WRONGTYPE"):
        await sessions.list_sessions("u1")
    await memory.add_memory("u2", [text_message("tea")])
    assert texts(await memory.search_memory("u2", "tea")) == ["tea"]
