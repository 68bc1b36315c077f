"""Connections, lifecycle and crash recovery of the Redis backends."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from agentmem import (
    BackendError,
    InvalidArgumentError,
    MemoryServiceFactory,
    RedisMemoryService,
    RedisSessionHistoryService,
    RedisStateService,
    ServiceNotStartedError,
    Session,
    SessionHistoryServiceFactory,
    StateServiceFactory,
)
from agentmem.services._redis import RedisConnection
from agentmem.services.memory.redis_memory_service import RedisMemoryService as ModuleMemoryService
from agentmem.services.redis_memory_service import RedisMemoryService as ShimMemoryService
from agentmem.testing.redis_server import RedisServer
from tests.helpers import text_message, texts
from tests.redis.conftest import Services, raw_client
from tests.redis_backends import drop_keys, unique_prefix


def _closed_port_url() -> str:
    server = RedisServer()  # reserves a free port and a directory, never started
    server.stop()
    return server.url


def test_spec_import_paths_are_the_same_class() -> None:
    assert ShimMemoryService is ModuleMemoryService is RedisMemoryService


async def test_constructing_and_starting_do_not_connect() -> None:
    spec_default = RedisMemoryService(redis_url="redis://localhost:6379/0")
    with pytest.raises(ServiceNotStartedError):
        await spec_default.add_memory("u1", [text_message("x")])
    assert await spec_default.health() is False
    down = RedisSessionHistoryService(_closed_port_url(), socket_connect_timeout=0.5)
    async with down:
        assert await down.health() is False
        with pytest.raises(BackendError) as caught:
            await down.list_sessions("u1")
        assert isinstance(caught.value.__cause__, aioredis.ConnectionError)


@pytest.mark.parametrize(
    "options",
    [
        {"max_connections": 0},
        {"ttl_seconds": 0},
        {"ttl_seconds": 1.5},
        {"key_prefix": "a{b}"},
        {"redis_client": "redis://127.0.0.1:1/0"},
        {"connection": "redis://127.0.0.1:1/0"},
        {"retries": -1},
        {"retries": True},
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        RedisStateService(**options)


def test_agentscope_positional_arguments() -> None:
    client = aioredis.Redis()
    memory = RedisMemoryService(
        "redis://h:1/0", client, 1.0, 2.0, 7, False, 60, 3, 10.0, False, key_prefix="p"
    )
    assert memory.connection == RedisConnection(
        url="redis://h:1/0",
        client=client,
        socket_timeout=1.0,
        socket_connect_timeout=2.0,
        max_connections=7,
        retry_on_timeout=False,
        health_check_interval=10.0,
        socket_keepalive=False,
        key_prefix="p",
    )
    assert (memory.ttl_seconds, memory.max_messages) == (60, 3)
    sessions = RedisSessionHistoryService("redis://h:1/0", None, 1.0, 2.0, 7, False, 60, 3)
    assert (sessions.ttl_seconds, sessions.max_messages) == (60, 3)
    # The state service of AgentScope Runtime 1.0 has no max_messages_per_session.
    states = RedisStateService("redis://h:1/0", None, 1.0, 2.0, 7, False, 60, 10.0, False)
    assert states.ttl_seconds == 60
    assert states.connection == RedisConnection(
        url="redis://h:1/0",
        socket_timeout=1.0,
        socket_connect_timeout=2.0,
        max_connections=7,
        retry_on_timeout=False,
        health_check_interval=10.0,
        socket_keepalive=False,
    )
    assert RedisStateService(max_connections=None).connection == RedisConnection()


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (("redis://h:1/0",), {"redis_url": "redis://h:2/0"}),
        (("redis://h:1/0", None, 1.0, 1.0, 5, True, 60), {"ttl_seconds": 30}),
        ((), {"connection": RedisConnection(), "key_prefix": "p"}),
        (("redis://h:1/0",), {"connection": RedisConnection()}),
        (tuple(range(11)), {}),
        ((), {"redis_ur": "redis://h:1/0"}),
    ],
)
def test_conflicting_arguments_are_refused(args: tuple[Any, ...], options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        RedisMemoryService(*args, **options)


async def test_retries_and_timeouts_reach_the_client() -> None:
    # The client re-sends a command after a connection error, and after a timeout
    # unless retry_on_timeout is off: the scripts make that safe (test_redis_faults.py).
    for retry_on_timeout in (True, False):
        setting = RedisConnection(retries=3, socket_timeout=0.5, retry_on_timeout=retry_on_timeout)
        client: Any = setting.build_client()
        retry = client.connection_pool.make_connection().retry
        assert retry.get_retries() == 3
        assert (aioredis.TimeoutError in retry._supported_errors) is retry_on_timeout
        await client.aclose()
    cluster: Any = RedisConnection(url="redis+cluster://h:1", retries=2).build_client()
    assert cluster.retry.get_retries() == 2
    await cluster.aclose()


def test_the_setting_hides_a_password() -> None:
    setting = RedisConnection(url="redis://admin:secret@h:1/0")
    assert "secret" not in repr(setting)
    assert "admin:***@h:1" in repr(setting)


async def test_one_connection_setting_serves_all_three(redis_url: str) -> None:
    prefix = unique_prefix()
    setting = RedisConnection(url=redis_url, key_prefix=prefix, max_connections=2)
    try:
        memory = RedisMemoryService(connection=setting)
        sessions = RedisSessionHistoryService(connection=setting)
        states = RedisStateService(connection=setting, ttl_seconds=60)
        async with memory, sessions, states:
            await memory.add_memory("u1", [text_message("tea")])
            await sessions.create_session("u1", "s")
            await states.save_state("u1", {"v": 1})
            assert texts(await memory.search_memory("u1", "tea")) == ["tea"]
            assert [s.id for s in await sessions.list_sessions("u1")] == ["s"]
            assert await states.export_state("u1") == {"v": 1}
            # Each made its own pool from the URL.
            assert len({id(s._client) for s in (memory, sessions, states)}) == 3
        client = aioredis.Redis.from_url(redis_url)
        shared = RedisConnection(client=client, key_prefix=prefix)
        async with (
            RedisMemoryService(connection=shared) as memory,
            RedisStateService(connection=shared) as states,
        ):
            assert memory._client is states._client is client
            assert texts(await memory.list_memory("u1")) == ["tea"]
        assert await client.ping() is True
        await client.aclose()
    finally:
        drop_keys(redis_url, prefix)


async def test_use_after_stop_raises(single: Services) -> None:
    states = await single.states()
    await states.stop()
    with pytest.raises(ServiceNotStartedError):
        await states.save_state("u1", {})
    await states.start()
    assert await states.save_state("u1", {}) == 1


async def test_a_borrowed_client_is_never_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = unique_prefix()
    try:
        async with RedisStateService(redis_client=client, key_prefix=prefix) as states:
            await states.save_state("u1", {"v": 1})
        assert await client.ping() is True
    finally:
        await client.aclose()
        drop_keys(redis_url, prefix)


async def test_an_owned_client_is_closed_by_stop(redis_url: str) -> None:
    states = RedisStateService(redis_url, key_prefix=unique_prefix())
    await states.start()
    client = states._client
    assert client is not None
    await states.health()
    await states.stop()
    assert client.connection_pool._in_use_connections == set()
    assert all(not c.is_connected for c in client.connection_pool._available_connections)


async def test_cluster_by_option_and_by_borrowed_client(redis_cluster_url: str) -> None:
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    prefix = unique_prefix()
    borrowed = raw_client(redis_cluster_url)
    try:
        async with RedisMemoryService(plain, cluster=True, key_prefix=prefix) as by_option:
            await by_option.add_memory("u1", [text_message("tea")])
        async with RedisMemoryService(redis_client=borrowed, key_prefix=prefix) as by_client:
            assert texts(await by_client.search_memory("u1", "tea")) == ["tea"]
        assert await borrowed.ping() is True
    finally:
        await borrowed.aclose()
        drop_keys(redis_cluster_url, prefix)


async def test_factory_builds_from_the_environment(redis_url: str) -> None:
    prefix = unique_prefix()
    environ = {
        "MEMORY_BACKEND": "redis",
        "MEMORY_REDIS_REDIS_URL": redis_url,
        "MEMORY_REDIS_KEY_PREFIX": prefix,
        "MEMORY_REDIS_TTL_SECONDS": "60",
    }
    service = MemoryServiceFactory.create(environ=environ)
    assert isinstance(service, RedisMemoryService)
    assert service.ttl_seconds == 60
    async with service:
        await service.add_memory("u1", [text_message("tea")])
        assert texts(await service.list_memory("u1")) == ["tea"]
    drop_keys(redis_url, prefix)
    sessions = SessionHistoryServiceFactory.create(
        "redis",
        environ={
            "SESSION_HISTORY_REDIS_CLUSTER": "true",
            "SESSION_HISTORY_REDIS_MAX_CONNECTIONS": "7",
            "SESSION_HISTORY_REDIS_MAX_MESSAGES_PER_SESSION": "3",
        },
    )
    assert isinstance(sessions, RedisSessionHistoryService)
    assert sessions.connection == RedisConnection(cluster=True, max_connections=7)
    assert (sessions.ttl_seconds, sessions.max_messages) == (None, 3)
    states = StateServiceFactory.create(
        "redis",
        environ={
            "STATE_REDIS_SOCKET_TIMEOUT": "1.5",
            "STATE_REDIS_TTL_SECONDS": "9",
            "STATE_REDIS_RETRIES": "4",
        },
    )
    assert isinstance(states, RedisStateService)
    assert (states.connection.socket_timeout, states.ttl_seconds) == (1.5, 9)
    assert states.connection.retries == 4


async def test_two_hundred_callers_queue_on_two_connections(services: Services) -> None:
    memory = await services.memory(max_connections=2)
    sessions = await services.sessions(max_connections=2)
    states = await services.states(max_connections=2)
    session = Session(id="busy", user_id="u1")
    rounds = await asyncio.gather(
        *(memory.add_memory("u1", [text_message(f"note {i}")], "s") for i in range(200)),
        *(sessions.append_message(session.model_copy(), text_message(f"m{i}")) for i in range(200)),
        *(states.save_state("u1", {"i": i}, session_id="s") for i in range(200)),
    )
    assert sorted(r for r in rounds if r is not None) == list(range(1, 201))
    assert len(await memory.list_memory("u1", {"page_size": 1000})) == 200
    assert len((await sessions.get_session("u1", "busy")).messages) == 200


async def _wait_for(condition: Callable[[], object], limit: float = 15.0) -> None:
    """Poll ``condition`` (plain or async) until it is true."""
    deadline = time.monotonic() + limit
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_writes_acknowledged_before_a_crash_survive_and_the_service_recovers() -> None:
    with RedisServer(appendonly=True) as server:
        options = {"key_prefix": "crash", "socket_timeout": 1.0, "socket_connect_timeout": 1.0}
        sessions = RedisSessionHistoryService(server.url, **options)
        memory = RedisMemoryService(server.url, **options)
        states = RedisStateService(server.url, **options)
        acknowledged: list[int] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def write_until_stopped() -> None:
            number = 0
            while not stop.is_set():
                try:
                    session = Session(id="s", user_id="u1")
                    await sessions.append_message(session, text_message(f"m{number}"))
                    await memory.add_memory("u1", [text_message(f"m{number}")], "s")
                    await states.save_state("u1", {"n": number}, "s", round_id=number + 1)
                    acknowledged.append(number)
                except BackendError as exc:
                    failures.append(exc)
                number += 1
                await asyncio.sleep(0)

        async with sessions, memory, states:
            # Stopped by a flag, not cancelled: the writes must end by themselves.
            writer = asyncio.create_task(write_until_stopped())
            try:
                await _wait_for(lambda: len(acknowledged) >= 50)
                server.kill()
                done_before_kill = len(acknowledged)
                await _wait_for(lambda: len(failures) >= 3)
                assert await memory.health() is False
                server.restart()
                await _wait_for(memory.health)
                await _wait_for(lambda: len(acknowledged) > done_before_kill + 10)
            finally:
                stop.set()
                await writer
            assert all(isinstance(failure, BackendError) for failure in failures)
            stored = texts((await sessions.get_session("u1", "s")).messages)
            listed = texts(await memory.list_memory("u1", {"page_size": 10_000}))
            rounds = set(await states.list_states("u1", "s"))
            for number in acknowledged:
                assert f"m{number}" in stored
                assert f"m{number}" in listed
                assert number + 1 in rounds
