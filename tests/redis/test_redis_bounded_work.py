"""No call keeps Redis busy for long, even at the limits of the contract.

Redis runs one script or transaction at a time and every other client waits meanwhile;
a script that runs past ``lua-time-limit`` (5 s) makes Redis answer BUSY to everyone.
These tests make the largest writes and reads the limits allow, on a Redis of their
own, while a second client in another process pings it, and report the longest command
Redis ran (SLOWLOG; a MULTI transaction counts as one) and the longest ping. Run with
``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from agentmem import (
    Message,
    RedisMemoryService,
    RedisSessionHistoryService,
    RedisStateService,
    Session,
    TextContent,
)
from agentmem.limits import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, MAX_STATE_BYTES
from agentmem.services._redis import RedisConnection, RedisServiceBase
from agentmem.testing.redis_server import RedisClusterServer, RedisServer

# Pings every node until its stdin closes, then prints the longest round trip and the
# errors seen (a BUSY reply among them).
PINGER = """
import json, select, sys, time
import redis
clients = [redis.Redis.from_url(url, socket_timeout=60) for url in sys.argv[1:]]
worst, errors, count = 0.0, [], 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for client in clients:
        started = time.perf_counter()
        try:
            client.ping()
        except redis.RedisError as exc:
            errors.append(str(exc))
        worst = max(worst, time.perf_counter() - started)
        count += 1
    time.sleep(0.0005)
print(json.dumps({"worst_ms": worst * 1000, "errors": errors[:5], "pings": count}))
"""

# Generous bounds, so that a busy machine, which may hold Redis off the CPU in the middle
# of a command, passes: before bounded steps, one add_memory of a large text kept Redis
# busy for seconds, and the largest writes here take a few ms per command.
COMMAND_BOUND_MS = 100
PING_BOUND_MS = 1000


@pytest.fixture(scope="module", params=["redis", "redis_cluster"])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer | RedisClusterServer]:
    """A Redis of these tests' own: the measures are not disturbed by other tests."""
    try:
        started = (RedisServer() if request.param == "redis" else RedisClusterServer()).start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.stop()


def _node_urls(server: RedisServer | RedisClusterServer) -> list[str]:
    return [server.url] if isinstance(server, RedisServer) else [n.url for n in server.nodes]


class Measure:
    """The longest command of each node (SLOWLOG and EXEC times) and a pinger's view."""

    def __init__(self, urls: list[str], *services: RedisServiceBase) -> None:
        self.urls = urls
        # Scripts run by SHA are named by the service's name for them.
        self.names = {
            sha: name for service in services for name, sha in service._script_shas.items()
        }
        self.clients = [aioredis.Redis.from_url(url) for url in urls]
        self.pinger: asyncio.subprocess.Process | None = None
        self.commands: dict[str, float] = {}

    async def __aenter__(self) -> Measure:
        for client in self.clients:
            await client.config_set("slowlog-log-slower-than", 0)
            await client.config_set("slowlog-max-len", 1_000_000)
            await client.slowlog_reset()
            await client.config_resetstat()
        self.pinger = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PINGER,
            *self.urls,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.pinger.stdout is not None
        assert (await self.pinger.stdout.readline()).strip() == b"ready"
        return self

    async def exec_ms(self) -> float:
        """The time of the MULTI transactions run since the last call, summed."""
        total = 0.0
        for client in self.clients:
            stats: Any = await client.info("commandstats")
            total += stats.get("cmdstat_exec", {}).get("usec", 0) / 1000
            await client.config_resetstat()
        return total

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.pinger is not None
        out, _ = await self.pinger.communicate(b"stop\n")
        self.ping = json.loads(out.decode().splitlines()[-1])
        worst: list[tuple[float, str]] = []
        for client in self.clients:
            for entry in await client.slowlog_get(1_000_000):
                words = entry["command"].decode(errors="replace").split(" ", 2)
                name = words[0] if words[0] != "EVALSHA" else self.names.get(words[1], "EVALSHA")
                if name not in {"SLOWLOG", "CONFIG", "INFO"}:
                    worst.append((entry["duration"] / 1000, name))
            await client.config_set("slowlog-log-slower-than", 10_000)
            await client.aclose()
        self.slowest = max(worst)


def _distinct_words(size: int) -> str:
    """About ``size`` bytes of words that are all different: one index term each. They
    are numbers, which the analyzer takes as they are (no stemming): the test is quick."""
    return " ".join(f"{number:08d}" for number in range(size // 9))


def _message(text: str) -> Message:
    return Message(role="user", content=[TextContent(text=text)])


def _json_size(message: Message) -> int:
    return len(message.__pydantic_serializer__.to_json(message))


def _largest_batch() -> list[Message]:
    """MAX_BATCH_MESSAGES messages of MAX_BATCH_BYTES of JSON in all, of long numbers
    (each its own term)."""
    overhead = _json_size(_message(""))
    each = MAX_BATCH_BYTES // MAX_BATCH_MESSAGES - overhead - 1
    return [
        _message(" ".join(f"{n:04d}{'0' * 75}{w:03d}" for w in range(each // 83)).ljust(each, "0"))
        for n in range(MAX_BATCH_MESSAGES)
    ]


async def test_the_largest_writes_keep_every_command_short(
    server: RedisServer | RedisClusterServer,
) -> None:
    connection = RedisConnection(url=server.url, key_prefix="limits", socket_timeout=30)
    memory = RedisMemoryService(connection=connection)
    sessions = RedisSessionHistoryService(connection=connection)
    states = RedisStateService(connection=connection)
    largest = _message(_distinct_words(MAX_MESSAGE_BYTES - _json_size(_message("")) - 10))
    batch = _largest_batch()
    assert _json_size(largest) <= MAX_MESSAGE_BYTES
    assert sum(map(_json_size, batch)) <= MAX_BATCH_BYTES
    state = {"blob": "s" * (MAX_STATE_BYTES - 20)}
    exec_ms: dict[str, float] = {}
    measure = Measure(_node_urls(server), memory, sessions, states)
    async with memory, sessions, states, measure:
        started = time.perf_counter()
        await memory.add_memory("u1", [largest], "largest")
        await memory.add_memory("u1", batch, "batch")
        await memory.add_memory("u1", batch, "batch")  # a retry: stores nothing new
        await sessions.append_message(Session(id="s", user_id="u1"), batch)
        exec_ms["append_message"] = await measure.exec_ms()
        await states.save_state("u1", state)
        exec_ms["save_state"] = await measure.exec_ms()
        assert await states.export_state("u1") == state
        assert len((await sessions.get_session("u1", "s")).messages) == MAX_BATCH_MESSAGES
        exec_ms["get_session"] = await measure.exec_ms()
        assert len(await memory.list_memory("u1", {"page_size": 10_000})) == 1 + len(batch)
        assert len(await memory.search_memory("u1", "00002748")) == 1
        await memory.delete_memory("u1", "largest")
        await memory.delete_memory("u1", "batch")
        await sessions.delete_session("u1", "s")
        await states.delete_state("u1")
        took = time.perf_counter() - started
    slowest_ms, slowest = measure.slowest
    worst_exec = max(exec_ms, key=lambda name: exec_ms[name])
    print(
        f"\n[{type(server).__name__}] the largest writes took {took:.1f} s; longest command "
        f"{slowest} {slowest_ms:.2f} ms; longest transaction ({worst_exec}) "
        f"{exec_ms[worst_exec]:.2f} ms; a second client's longest ping "
        f"{measure.ping['worst_ms']:.2f} ms over {measure.ping['pings']} pings"
    )
    assert measure.ping["errors"] == []
    assert slowest_ms < COMMAND_BOUND_MS
    assert exec_ms[worst_exec] < COMMAND_BOUND_MS
    assert measure.ping["worst_ms"] < PING_BOUND_MS
    async with aioredis.Redis.from_url(_node_urls(server)[0]) as client:
        assert [key async for key in client.scan_iter(match="limits:*")] == []
