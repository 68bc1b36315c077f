"""export_user / import_user: every session, memory (with its time) and state round of a
user moves between backends unchanged, within the batch limits, or the call refuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
import redis
import redis.asyncio as aioredis

from agentmem import (
    Capability,
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryRecord,
    MemoryService,
    Message,
    SessionHistoryService,
    StateService,
    UnsupportedOperationError,
)
from agentmem.limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_PAGE_SIZE,
    MAX_ROUND_ID,
)
from agentmem.migration import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    MigrationReport,
    export_user,
    import_agentscope_redis,
    import_user,
)
from agentmem.testing.redis_server import RedisServer
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS, STATE_BACKENDS
from tests.helpers import text_message, texts
from tests.redis_backends import drop_keys, unique_prefix

Services = tuple[MemoryService, SessionHistoryService, StateService]

T0 = datetime(2023, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
T1 = datetime(2024, 6, 30, 23, 59, 59, 1, tzinfo=UTC)


def _in_memory() -> Services:
    return InMemoryMemoryService(), InMemorySessionHistoryService(), InMemoryStateService()


async def _fill(services: Services, user_id: str = "u1") -> None:
    """A user with memories of several sessions and times, history sessions and states,
    some in sessions that nothing but the data itself names."""
    memory, sessions, states = services
    await memory.add_memory(
        user_id, [text_message("tea"), text_message("cake")], "a", created_at=T0
    )
    await memory.add_memory(user_id, [text_message("lake tea")], created_at=T0)
    extra = text_message("sunrise", metadata={"mood": "calm", "score": 0.25, "tags": ["x"]})
    await memory.add_memory(user_id, [extra], "unnamed-memories", created_at=T1.timestamp())
    await memory.add_memory(user_id, [text_message("today")], "a")
    await memory.add_memory("someone-else", [text_message("not exported")])
    chat = await sessions.create_session(user_id, "chat")
    await sessions.append_message(chat, [text_message("hi"), text_message("ho", role="assistant")])
    await sessions.create_session(user_id, "empty")
    await states.save_state(user_id, {"v": 1}, "a")
    await states.save_state(user_id, {"v": 2, "deep": {"list": [1, 2.5, None]}}, "a", round_id=5)
    await states.save_state(user_id, {"top": True}, "unnamed-states", round_id=MAX_ROUND_ID)
    await states.save_state(user_id, {"plain": "default"})


async def _export(services: Services, user_id: str = "u1") -> str:
    out = io.StringIO()
    memory, sessions, states = services
    await export_user(user_id, out, memory=memory, sessions=sessions, states=states)
    return out.getvalue()


async def _import(services: Services, text: str) -> None:
    memory, sessions, states = services
    report = await import_user(text.splitlines(), memory=memory, sessions=sessions, states=states)
    assert report.skipped == []


async def _all_records(memory: MemoryService, user_id: str) -> list[MemoryRecord]:
    return await memory.list_memory_records(user_id, {"page_size": MAX_PAGE_SIZE})


async def _redis_services(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[Services]:
    made = (
        await MEMORY_BACKENDS[backend](request),
        await SESSION_HISTORY_BACKENDS[backend](request),
        await STATE_BACKENDS[backend](request),
    )
    for service in made:
        await service.start()
    try:
        yield made
    finally:
        for service in made:
            await service.stop()


@pytest.fixture(params=["redis", "redis_cluster"])
async def redis_services(request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """Memory, history and state services on one Redis setup, on a key prefix of their own."""
    async for made in _redis_services(request, request.param):
        yield made


async def test_round_trip_in_memory_redis_in_memory_is_equal(redis_services: Services) -> None:
    source = _in_memory()
    await _fill(source)
    exported = await _export(source)
    await _import(redis_services, exported)
    assert await _export(redis_services) == exported
    copy = _in_memory()
    await _import(copy, await _export(redis_services))
    assert await _export(copy) == exported

    memory = copy[0]
    assert await _all_records(memory, "u1") == await _all_records(source[0], "u1")
    records = await _all_records(memory, "u1")
    assert [(r.session_id, r.created_at) for r in records[:4]] == [
        ("a", T0),
        ("a", T0),
        ("default", T0),
        ("unnamed-memories", T1),
    ]
    assert await memory.list_session_ids("u1") == ["a", "default", "unnamed-memories"]
    assert await memory.list_memory("someone-else") == []
    sessions = copy[1]
    assert [s.id for s in await sessions.list_sessions("u1")] == ["chat", "empty"]
    assert await sessions.get_session("u1", "chat") == await source[1].get_session("u1", "chat")
    states = copy[2]
    assert await states.list_session_ids("u1") == ["a", "default", "unnamed-states"]
    assert await states.list_states("u1", "a") == [1, 5]
    assert await states.export_state("u1", "unnamed-states") == {"top": True}
    assert await states.export_state("u1", "a", 5) == {"v": 2, "deep": {"list": [1, 2.5, None]}}


async def test_round_trip_between_redis_and_redis_cluster(
    request: pytest.FixtureRequest,
) -> None:
    source = _in_memory()
    await _fill(source)
    exported = await _export(source)
    async for single in _redis_services(request, "redis"):
        await _import(single, exported)
        async for cluster in _redis_services(request, "redis_cluster"):
            await _import(cluster, await _export(single))
            assert await _export(cluster) == exported


async def test_the_export_is_versioned_json_lines() -> None:
    source = _in_memory()
    await _fill(source)
    header, *records = [json.loads(line) for line in (await _export(source)).splitlines()]
    assert header == {
        "type": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "user_id": "u1",
    }
    kinds = [record["type"] for record in records]
    assert kinds == ["session"] * 2 + ["memory"] * 5 + ["state"] * 4
    assert all(record["user_id"] == "u1" for record in records)
    first_memory = records[2]
    assert first_memory["session_id"] == "a"
    assert first_memory["created_at"] == "2023-01-02T03:04:05.678901+00:00"
    assert first_memory["message"]["content"][0]["text"] == "tea"


async def _through(kind: str, target: Any) -> tuple[str, MigrationReport, str]:
    """The export of ``kind`` ("memory", "sessions" or "states") of the filled user, the
    report of importing it into ``target``, and the export of ``target`` afterwards."""
    filled = _in_memory()
    await _fill(filled)
    source: dict[str, Any] = dict(zip(("memory", "sessions", "states"), filled, strict=True))
    out = io.StringIO()
    await export_user("u1", out, **{kind: source[kind]})
    report = await import_user(out.getvalue().splitlines(), **{kind: target})
    again = io.StringIO()
    await export_user("u1", again, **{kind: target})
    return out.getvalue(), report, again.getvalue()


async def test_any_memory_backend_takes_an_export_back_unchanged_or_refuses(
    memory_service: MemoryService,
) -> None:
    if Capability.CREATION_TIME not in memory_service.capabilities:
        with pytest.raises(UnsupportedOperationError, match="creation time"):
            await _through("memory", memory_service)
        assert await memory_service.list_memory("u1") == []
        return
    exported, report, again = await _through("memory", memory_service)
    assert (report.memories, report.skipped) == (5, [])
    assert again == exported


async def test_any_session_history_backend_takes_an_export_back_unchanged(
    session_service: SessionHistoryService,
) -> None:
    exported, report, again = await _through("sessions", session_service)
    assert (report.sessions, report.messages, report.skipped) == (2, 2, [])
    assert again == exported


async def test_any_state_backend_takes_an_export_back_unchanged(
    state_service: StateService,
) -> None:
    exported, report, again = await _through("states", state_service)
    assert (report.states, report.skipped) == (4, [])
    assert again == exported


class _CountingMemory(InMemoryMemoryService):
    """Records the size of every storage call, to see how an import cut its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        self.calls.append(len(messages))
        await super()._add_memories(user_id, session_id, messages, created_at)


class _CountingSessions(InMemorySessionHistoryService):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        self.calls.append(len(messages))
        await super()._append_messages(user_id, session_id, messages)


def _numbered(count: int, **fields: Any) -> list[Message]:
    return [text_message(f"note {index}", **fields) for index in range(count)]


async def test_import_groups_memories_of_one_session_and_time_within_the_limits() -> None:
    source = InMemoryMemoryService()
    many = _numbered(2 * MAX_BATCH_MESSAGES + 10)
    for start in range(0, len(many), MAX_BATCH_MESSAGES):
        await source.add_memory("u1", many[start : start + MAX_BATCH_MESSAGES], "s", created_at=T0)
    await source.add_memory("u1", [text_message("later")], "s", created_at=T1)
    await source.add_memory("u1", [text_message("elsewhere")], "t", created_at=T1)
    out = io.StringIO()
    await export_user("u1", out, memory=source)
    target = _CountingMemory()
    report = await import_user(out.getvalue().splitlines(), memory=target)
    assert report.memories == len(many) + 2
    assert target.calls == [MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 10, 1, 1]
    assert await _all_records(target, "u1") == await _all_records(source, "u1")


async def test_import_cuts_large_messages_within_the_byte_limit() -> None:
    # Messages just under the size limit, eight to a call; in metadata, which is not
    # indexed, so they stay cheap to add.
    blob = "x" * (MAX_MESSAGE_BYTES - 1024)
    assert 8 * MAX_MESSAGE_BYTES <= MAX_BATCH_BYTES < 9 * (MAX_MESSAGE_BYTES - 1024)
    large = _numbered(17, metadata={"blob": blob})
    source_memory, source_sessions = InMemoryMemoryService(), InMemorySessionHistoryService()
    for message in large:
        await source_memory.add_memory("u1", [message], created_at=T0)
    chat = await source_sessions.create_session("u1", "chat")
    for message in large:
        await source_sessions.append_message(chat, message)
    out = io.StringIO()
    await export_user("u1", out, memory=source_memory, sessions=source_sessions)
    memory, sessions = _CountingMemory(), _CountingSessions()
    await import_user(out.getvalue().splitlines(), memory=memory, sessions=sessions)
    assert memory.calls == sessions.calls == [8, 8, 1]
    assert await _all_records(memory, "u1") == await _all_records(source_memory, "u1")
    assert await sessions.get_session("u1", "chat") == await source_sessions.get_session(
        "u1", "chat"
    )


async def test_import_appends_a_long_session_in_batches() -> None:
    source = InMemorySessionHistoryService()
    chat = await source.create_session("u1", "chat")
    messages = _numbered(MAX_BATCH_MESSAGES + 1)
    await source.append_message(chat, messages[:MAX_BATCH_MESSAGES])
    await source.append_message(chat, messages[MAX_BATCH_MESSAGES:])
    out = io.StringIO()
    await export_user("u1", out, sessions=source)
    target = _CountingSessions()
    report = await import_user(out.getvalue().splitlines(), sessions=target)
    assert (report.sessions, report.messages) == (1, MAX_BATCH_MESSAGES + 1)
    assert target.calls == [MAX_BATCH_MESSAGES, 1]
    assert await target.get_session("u1", "chat") == await source.get_session("u1", "chat")


class _NoSessionListing(InMemoryStateService):
    capabilities: ClassVar[frozenset[Capability]] = frozenset()


class _NoCreationTime(InMemoryMemoryService):
    capabilities: ClassVar[frozenset[Capability]] = InMemoryMemoryService.capabilities - {
        Capability.CREATION_TIME
    }


async def test_export_refuses_states_it_cannot_enumerate_before_writing() -> None:
    states = _NoSessionListing()
    await states.save_state("u1", {"v": 1}, "hidden")
    out = io.StringIO()
    with pytest.raises(UnsupportedOperationError, match=r"list_sessions.*states=None"):
        await export_user("u1", out, memory=InMemoryMemoryService(), states=states)
    assert out.getvalue() == ""


async def test_import_refuses_to_drop_creation_times_before_writing() -> None:
    source = _in_memory()
    await _fill(source)
    exported = await _export(source)
    memory, sessions = _NoCreationTime(), InMemorySessionHistoryService()
    with pytest.raises(UnsupportedOperationError, match=r"creation_time.*memory=None"):
        await import_user(exported.splitlines(), memory=memory, sessions=sessions)
    assert await memory.list_memory("u1") == []
    assert await sessions.list_sessions("u1") == []
    report = await import_user(exported.splitlines(), sessions=sessions)
    assert report.sessions == 2


async def test_import_refuses_a_newer_format() -> None:
    header = {"type": "header", "format": EXPORT_FORMAT, "version": EXPORT_VERSION + 1}
    memory = InMemoryMemoryService()
    with pytest.raises(UnsupportedOperationError, match="upgrade agentmem"):
        await import_user([json.dumps(header)], memory=memory)


async def test_import_reads_the_first_format() -> None:
    # Version 1: no header, memories without times, a null session meaning "default".
    lines = [
        {"type": "session", "user_id": "u1", "session_id": "chat", "messages": []},
        {"type": "memory", "user_id": "u1", "session_id": None, "message": {"id": "m1"}},
        {"type": "memory", "user_id": "u1", "session_id": "a", "message": {"id": "m2"}},
        {"type": "state", "user_id": "u1", "session_id": "a", "round_id": 3, "state": {"v": 1}},
    ]
    memory, sessions, states = _NoCreationTime(), _CountingSessions(), InMemoryStateService()
    before = datetime.now(UTC)
    report = await import_user(
        [json.dumps(line) for line in lines], memory=memory, sessions=sessions, states=states
    )
    assert (report.memories, report.sessions, report.states, report.skipped) == (2, 1, 1, [])
    records = await _all_records(memory, "u1")
    assert [(r.message.id, r.session_id) for r in records] == [("m1", "default"), ("m2", "a")]
    assert all(r.created_at >= before.replace(microsecond=0) for r in records)
    assert [s.id for s in await sessions.list_sessions("u1")] == ["chat"]
    assert await states.export_state("u1", "a", 3) == {"v": 1}


async def test_import_skips_and_reports_bad_lines_and_stores_none_of_them() -> None:
    def memory_line(message: object, **fields: Any) -> str:
        record = {"type": "memory", "user_id": "u1", "session_id": "s", "message": message}
        return json.dumps({**record, **fields})

    good = text_message("kept").model_dump(mode="json")
    lines = [
        "not json",
        "[1, 2]",
        json.dumps({"type": "memo", "user_id": "u1"}),
        json.dumps({"type": "header", "format": "something else", "version": 1}),
        memory_line({"content": 5}),
        memory_line({**good, "metadata": {"x": float("nan")}}),
        memory_line([good, good]),
        memory_line(good, created_at="yesterday"),
        memory_line(good, user_id="  "),
        json.dumps(
            {"type": "state", "user_id": "u1", "session_id": "s", "round_id": 0, "state": {}}
        ),
        json.dumps({"type": "state", "user_id": "u1", "session_id": "s", "state": {}}),
        json.dumps({"type": "session", "user_id": "u1", "session_id": "s", "messages": [1]}),
        memory_line(good),
        "",
    ]
    memory, sessions, states = _in_memory()
    report = await import_user(lines, memory=memory, sessions=sessions, states=states)
    assert report.memories == 1
    assert len(report.skipped) == 12
    assert report.skipped[0].startswith("line 1: ")
    assert "missing field 'round_id'" in report.skipped[10]
    assert texts(await memory.list_memory("u1")) == ["kept"]
    assert await sessions.list_sessions("u1") == []
    assert await states.list_session_ids("u1") == []


async def test_import_agentscope_redis_cuts_big_sessions_within_the_limits() -> None:
    memories = [m.model_dump(mode="json") for m in _numbered(MAX_BATCH_MESSAGES + 5)]
    session = {"id": "chat", "user_id": "alice", "messages": memories}
    with RedisServer() as server:
        with redis.Redis.from_url(server.url) as client:
            client.hset("user_memory:alice", "big", json.dumps(memories))
            client.set("session:alice:chat", json.dumps(session))
        source = aioredis.Redis.from_url(server.url)
        memory, sessions = _CountingMemory(), _CountingSessions()
        try:
            report = await import_agentscope_redis(source, memory=memory, sessions=sessions)
        finally:
            await source.aclose()
    assert (report.memories, report.sessions, report.messages) == (
        MAX_BATCH_MESSAGES + 5,
        1,
        MAX_BATCH_MESSAGES + 5,
    )
    assert memory.calls == sessions.calls == [MAX_BATCH_MESSAGES, 5]
    assert len(await _all_records(memory, "alice")) == MAX_BATCH_MESSAGES + 5
    assert len((await sessions.get_session("alice", "chat")).messages) == MAX_BATCH_MESSAGES + 5


def _agentmem(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentmem", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_command_line_export_then_import(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    first, second = unique_prefix(), unique_prefix()
    request.addfinalizer(lambda: drop_keys(redis_url, first))
    request.addfinalizer(lambda: drop_keys(redis_url, second))
    from agentmem import RedisMemoryService, RedisSessionHistoryService, RedisStateService

    def services(prefix: str) -> Services:
        return (
            RedisMemoryService(redis_url, key_prefix=prefix),
            RedisSessionHistoryService(redis_url, key_prefix=prefix),
            RedisStateService(redis_url, key_prefix=prefix),
        )

    source = services(first)
    for service in source:
        await service.start()
    try:
        await _fill(source)
        expected = await _export(source)
    finally:
        for service in source:
            await service.stop()

    exported = _agentmem("redis", "export", "--user", "u1", "--url", redis_url,
                         "--key-prefix", first)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == expected
    assert "exported 12 lines" in exported.stderr
    imported = _agentmem("redis", "import", "--url", redis_url, "--key-prefix", second,
                         stdin=exported.stdout)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "imported 5 memories, 2 sessions (2 messages), 4 states; skipped 0" in imported.stderr

    copy = services(second)
    for service in copy:
        await service.start()
    try:
        assert await _export(copy) == expected
    finally:
        for service in copy:
            await service.stop()
