"""Import of AgentScope Runtime 1.0's Redis data, and JSON-lines export/import."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from agentmem import (
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryService,
    SessionHistoryService,
    StateService,
)
from agentmem.__main__ import main
from agentmem.migration import export_user, import_agentscope_redis, import_user
from agentmem.testing.redis_server import RedisServer
from tests.helpers import text_message, texts
from tests.redis.conftest import Services
from tests.redis_backends import drop_keys, unique_prefix


def _message(text: str) -> dict[str, object]:
    return text_message(text).model_dump(mode="json")


@pytest.fixture(scope="module")
def agentscope_url() -> Iterator[str]:
    """A Redis holding data as AgentScope Runtime 1.0's services wrote it."""
    with RedisServer() as server, redis.Redis.from_url(server.url) as client:
        client.hset(
            "user_memory:alice",
            mapping={
                "default": json.dumps([_message("tea in the morning")]),
                "trip": json.dumps([_message("train to Paris"), _message("tea in Paris")]),
                "broken": "{not json",
            },
        )
        client.hset("user_memory:bob:x", "default", json.dumps([_message("bob's cake")]))
        session = {"id": "chat", "user_id": "alice", "messages": [_message("hello")]}
        client.set("session:alice:chat", json.dumps(session))
        client.set(
            "session:bob:x:s:1", json.dumps({"id": "s:1", "user_id": "bob:x", "messages": []})
        )
        client.hset("user_state:alice:chat", mapping={"1": '{"step": 1}', "2": '{"step": 2}'})
        client.hset("user_state:bob:x:s:1", mapping={"1": '{"b": true}', "bad": "{}"})
        yield server.url


@pytest.fixture
async def agentscope(agentscope_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(agentscope_url)
    yield client
    await client.aclose()


async def test_import_from_agentscope_runtime(single: Services, agentscope: aioredis.Redis) -> None:
    memory, sessions, states = (
        await single.memory(),
        await single.sessions(),
        await single.states(),
    )
    report = await import_agentscope_redis(
        agentscope, memory=memory, sessions=sessions, states=states
    )
    assert (report.memories, report.sessions, report.messages, report.states) == (4, 2, 1, 3)
    assert len(report.skipped) == 2
    assert texts(await memory.list_memory("alice")) == [
        "tea in the morning",
        "train to Paris",
        "tea in Paris",
    ]
    assert texts(await memory.search_memory("alice", "paris", {"session_id": "trip"})) == [
        "tea in Paris",
        "train to Paris",
    ]
    assert texts(await memory.list_memory("bob:x")) == ["bob's cake"]
    assert texts((await sessions.get_session("alice", "chat")).messages) == ["hello"]
    assert [s.id for s in await sessions.list_sessions("bob:x")] == ["s:1"]
    assert await states.list_states("alice", "chat") == [1, 2]
    # "bob:x" is a known user (from memories and sessions), so "bob:x:s:1" splits right.
    assert await states.export_state("bob:x", "s:1") == {"b": True}


async def _fill(
    memory: MemoryService, sessions: SessionHistoryService, states: StateService
) -> None:
    await memory.add_memory("u1", [text_message("tea"), text_message("cake")], "a")
    await memory.add_memory("u1", [text_message("lake tea")])
    await memory.add_memory("u1", [text_message("sunrise")], "unlisted")
    session = await sessions.create_session("u1", "a")
    await sessions.append_message(session, [text_message("hi"), text_message("ho")])
    await states.save_state("u1", {"v": 1}, "a")
    await states.save_state("u1", {"v": 2}, "a", round_id=5)


async def test_export_and_import_between_backends(services: Services) -> None:
    source = InMemoryMemoryService(), InMemorySessionHistoryService(), InMemoryStateService()
    await _fill(*source)
    out = io.StringIO()
    lines = await export_user("u1", out, memory=source[0], sessions=source[1], states=source[2])
    assert lines == len(out.getvalue().splitlines()) == 1 + 1 + 4 + 2
    memory, sessions, states = (
        await services.memory(),
        await services.sessions(),
        await services.states(),
    )
    report = await import_user(
        out.getvalue().splitlines(), memory=memory, sessions=sessions, states=states
    )
    assert (report.memories, report.sessions, report.states, report.skipped) == (4, 1, 2, [])
    assert [m.id for m in await memory.list_memory("u1")] == [
        m.id for m in await source[0].list_memory("u1")
    ]
    for session_id in ("a", "default", "unlisted"):
        filters = {"session_id": session_id}
        assert texts(await memory.list_memory("u1", filters)) == texts(
            await source[0].list_memory("u1", filters)
        )
    assert await sessions.get_session("u1", "a") == await source[1].get_session("u1", "a")
    assert await states.list_states("u1", "a") == [1, 5]
    assert await states.export_state("u1", "a") == {"v": 2}


async def test_import_skips_and_reports_bad_lines(single: Services) -> None:
    memory = await single.memory()
    lines = [
        "not json",
        json.dumps(
            {"type": "memory", "user_id": "u1", "session_id": None, "message": {"content": 5}}
        ),
        json.dumps(
            {"type": "memory", "user_id": "u1", "session_id": None, "message": _message("ok")}
        ),
        "",
    ]
    report = await import_user(lines, memory=memory)
    assert report.memories == 1
    assert len(report.skipped) == 2
    assert texts(await memory.list_memory("u1")) == ["ok"]


def test_command_line_round_trip(agentscope_url: str, redis_url: str, tmp_path: Path) -> None:
    first, second = unique_prefix(), unique_prefix()
    try:
        source = ["--from", agentscope_url, "--url", redis_url, "--key-prefix", first]
        status = main(["redis", "import-agentscope", *source])
        assert status == 1  # two entries were skipped, and said so
        exported = tmp_path / "alice.jsonl"
        common = ["--url", redis_url, "--file", str(exported)]
        assert main(["redis", "export", "--user", "alice", *common,
                     "--key-prefix", first]) == 0  # fmt: skip
        kinds = [json.loads(line)["type"] for line in exported.read_text().splitlines()]
        assert sorted(set(kinds)) == ["header", "memory", "session", "state"]
        assert main(["redis", "import", *common, "--key-prefix", second]) == 0
        with redis.Redis.from_url(redis_url) as client:
            assert client.keys(f"{second}:*")
    finally:
        drop_keys(redis_url, first)
        drop_keys(redis_url, second)
