"""Writes while Redis is paused (SIGSTOP) and resumed (SIGCONT), single and cluster.

A paused Redis accepts connections and buffers commands but answers nothing; on SIGCONT
it runs every command it received, including those of connections the client gave up
on. So a write whose reply timed out may have been applied, once or (re-sent by
redis-py) several times. The tests pause a Redis started for them alone while 50
writers add memories, append messages and save states, and check that every write that
returned is stored exactly once, that a call that raised left nothing or the whole
write, and that retrying it stores it exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from agentmem import (
    BackendError,
    RedisMemoryService,
    RedisSessionHistoryService,
    RedisStateService,
    Session,
)
from agentmem.services._redis import RedisConnection
from agentmem.services.memory.redis.writes import STEP_TERMS
from agentmem.testing.redis_server import RedisClusterServer, RedisServer
from tests.helpers import text_message
from tests.redis_backends import unique_prefix

WRITERS = 50
USERS = 5
# Short, so a pause longer than the socket timeout or the retry budget is short too.
SOCKET_TIMEOUT = 0.25


@dataclass
class Paused:
    """A Redis (or the nodes of a cluster) that a test may pause."""

    url: str
    pids: list[int]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in self.pids:
                os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module", params=["redis", "redis_cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Paused]:
    """A Redis of these tests' own, so pausing it disturbs no other test."""
    try:
        server: RedisServer | RedisClusterServer = (
            RedisServer() if request.param == "redis" else RedisClusterServer()
        ).start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    nodes = [server] if isinstance(server, RedisServer) else server.nodes
    pids = []
    for node in nodes:
        with redis.Redis.from_url(node.url) as client:
            info: Any = client.info("server")
            pids.append(int(info["process_id"]))
    try:
        yield Paused(server.url, pids)
    finally:
        server.stop()


@dataclass
class Call:
    """One write: what it stores, how to make it, and what became of it."""

    kind: str
    user: str
    session: str
    #: What the write stores: a message id, or (writer, step) of a state.
    stored: Any
    make: Callable[[], Awaitable[Any]]
    #: Each attempt's outcome: the value returned, or the error raised.
    outcomes: list[Any] = field(default_factory=list)

    async def attempt(self) -> None:
        try:
            self.outcomes.append(await self.make())
        except BackendError as exc:
            self.outcomes.append(exc)

    @property
    def raised(self) -> bool:
        return isinstance(self.outcomes[0], BackendError)


@dataclass
class Writers:
    """The services under test and the calls their writers made."""

    memory: RedisMemoryService
    sessions: RedisSessionHistoryService
    states: RedisStateService
    calls: list[Call] = field(default_factory=list)

    def acknowledged(self) -> int:
        return sum(1 for call in self.calls if call.outcomes and not call.raised)

    async def write(self, writer: int, step: int) -> None:
        user, session = f"u{writer % USERS}", f"s{writer % USERS}"
        if writer == 0:
            # Larger than one script takes: a write in steps, cut anywhere by the pause.
            message = text_message(" ".join(f"w0x{step}x{n}" for n in range(STEP_TERMS + 10)))
        else:
            message = text_message(f"tea from {writer} step {step}")
        state = {"writer": writer, "step": step}
        calls = [
            Call(
                "memory",
                user,
                session,
                message.id,
                lambda: self.memory.add_memory(user, [message], session),
            ),
            Call(
                "session",
                user,
                session,
                message.id,
                lambda: self.sessions.append_message(Session(id=session, user_id=user), message),
            ),
            Call(
                "state",
                user,
                session,
                (writer, step),
                lambda: self.states.save_state(user, state, session),
            ),
        ]
        for call in calls:
            self.calls.append(call)
            await call.attempt()


async def _wait_until(condition: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _run(target: Paused, *, retries: int, pause: float) -> Writers:
    """50 writers write, Redis pauses for ``pause`` seconds, they write again, then stop."""
    connection = RedisConnection(
        url=target.url,
        key_prefix=unique_prefix(),
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retries=retries,
    )
    writers = Writers(
        RedisMemoryService(connection=connection),
        RedisSessionHistoryService(connection=connection),
        RedisStateService(connection=connection),
    )
    stop = asyncio.Event()

    async def writer(number: int) -> None:
        step = 0
        while not stop.is_set():
            await writers.write(number, step)
            step += 1

    async with writers.memory, writers.sessions, writers.states:
        tasks = [asyncio.create_task(writer(number)) for number in range(WRITERS)]
        try:
            await _wait_until(lambda: writers.acknowledged() >= 150)
            fresh = RedisStateService(connection=connection)
            await fresh.start()
            with target.paused():
                # health() answers within its bound: when every connection of the pool
                # waits for an answer, and when it must connect first.
                started = time.monotonic()
                healthy = await asyncio.gather(writers.memory.health(), fresh.health())
                took = time.monotonic() - started
                await asyncio.sleep(max(0.0, pause - took))
            await fresh.stop()
            assert list(healthy) == [False, False]
            assert took < writers.memory.health_timeout + 0.5
            resumed = writers.acknowledged()
            await _wait_until(lambda: writers.acknowledged() >= resumed + 150)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert await writers.memory.health() is True
        await _check(writers)
    return writers


async def _check(writers: Writers) -> None:
    """Every write is stored at most once, every acknowledged one exactly once; retried,
    every call that raised is stored exactly once."""
    await _check_stored(writers, retried=False)
    for call in writers.calls:
        if call.raised:
            await call.attempt()
            assert not isinstance(call.outcomes[-1], BackendError)
    await _check_stored(writers, retried=True)


async def _stored(writers: Writers, user: str, session: str) -> dict[str, Counter[Any]]:
    """How often each message id, and each (writer, step) of a state, is stored."""
    records = await writers.memory.list_memory_records(
        user, {"page_size": 10_000, "session_id": session}
    )
    messages = (await writers.sessions.get_session(user, session)).messages
    states: Counter[Any] = Counter()
    for round_id in await writers.states.list_states(user, session):
        state = await writers.states.export_state(user, session, round_id)
        assert state is not None
        states[(state["writer"], state["step"])] += 1
    return {
        "memory": Counter(record.message.id for record in records),
        "session": Counter(message.id for message in messages),
        "state": states,
    }


async def _check_stored(writers: Writers, *, retried: bool) -> None:
    for number in range(USERS):
        user, session = f"u{number}", f"s{number}"
        stored = await _stored(writers, user, session)
        calls = [call for call in writers.calls if call.user == user]
        for kind, counts in stored.items():
            made = {call.stored for call in calls if call.kind == kind}
            assert set(counts) <= made
            assert set(counts.values()) <= {1}
            for call in calls:
                if call.kind == kind and (retried or not call.raised):
                    assert counts[call.stored] == 1
        for call in calls:
            if call.kind == "state" and (retried or not call.raised):
                round_id = call.outcomes[-1]
                state = await writers.states.export_state(user, session, round_id)
                assert state == {"writer": call.stored[0], "step": call.stored[1]}


async def test_a_pause_longer_than_the_socket_timeout(target: Paused) -> None:
    # Calls time out and redis-py sends them again, within a budget of about
    # 4 * 0.25 s + 0.35 s of pauses: every copy runs when Redis resumes.
    writers = await _run(target, retries=3, pause=4 * SOCKET_TIMEOUT)
    assert writers.acknowledged() > 300


async def test_a_pause_longer_than_the_retry_budget(target: Paused) -> None:
    # Budget: 2 * 0.25 s + 0.05 s. The calls under way raise, applied or not.
    writers = await _run(target, retries=1, pause=2.0)
    assert any(call.raised for call in writers.calls)
