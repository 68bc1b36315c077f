"""Figures of the Redis backends on a throwaway local Redis: ``python benchmarks/redis_bench.py``.

Prints, next to each goal:

- append cost per call at a history of 100 and of 4,000 messages (``add_memory`` and
  ``append_message`` of one message to one session), and their ratio;
- the cost of idempotency: the same calls, timed in turns with services whose scripts
  skip the message-id check that makes a re-sent or retried write store nothing new;
- search p50 at 10,000 and 100,000 memories of one user;
- search p50 at 10,000 memories for queries holding a word that about 400 of them hold,
  next to the in-memory backend's on the same data and, when ``agentscope_runtime`` is
  importable, AgentScope Runtime 1.0.5's Redis memory service on the same Redis and data
  (for instance with ``PYTHONPATH`` pointing at an unpacked 1.0.5 source tree), with the
  ratio;
- ``list_memory`` page p50 at 10,000 memories;
- throughput of 50 concurrent writers against a bare redis-py ``RPUSH`` loop of the
  same payload, in the same run;
- Redis memory per stored message against the message's JSON size, with and without
  the message-id check (whose set of ids costs memory too).

``--quick`` uses smaller sizes (search at 10,000 and 20,000) for a fast smoke run;
``--only-peers`` runs only the comparison with the in-memory backend and AgentScope.
Memories are synthetic chat turns: 8 to 24 words drawn from a Zipf-distributed
vocabulary of 20,000 made-up words; queries are 3 content words (vocabulary ranks 50 to
5,000), like the names and things a user asks about.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import redis.asyncio as aioredis

from agentmem import InMemoryMemoryService, Message, Session, TextContent
from agentmem.search.analysis import analyze, term_counts
from agentmem.services._redis import RedisConnection
from agentmem.services.memory.redis import RedisMemoryService
from agentmem.services.session_history.redis_session_history_service import (
    RedisSessionHistoryService,
)
from agentmem.testing.redis_server import RedisServer

try:
    # Runtime 1.0.5 warns that its memory module is deprecated, past any filter set
    # here: the warning is recorded, not shown.
    with warnings.catch_warnings(record=True):
        from agentscope_runtime.engine.schemas.agent_schemas import Message as PeerMessage
        from agentscope_runtime.engine.services.memory.redis_memory_service import (
            RedisMemoryService as PeerMemoryService,
        )
except ImportError:
    PeerMessage = PeerMemoryService = None

# The message-id check of each write script, and what stands in for it in the variants
# without idempotency (which would store a re-sent write twice).
_MEMORY_CHECK = ("redis.call('SADD', message_ids, session .. ':' .. message_id) == 1", "true")
_SESSION_CHECK = ("for _, i in ipairs(claim_ids(5, n)) do", "for i = 1, n do")


def _without_check(scripts: Mapping[str, str], name: str, check: tuple[str, str]) -> dict[str, str]:
    source = scripts[name]
    if source.count(check[0]) != 1:
        raise RuntimeError(f"the {name!r} script changed: update the benchmark's check")
    return {**scripts, name: source.replace(*check)}


class MemoryWithoutIdempotency(RedisMemoryService):
    """RedisMemoryService whose add script stores every message, known or not."""

    scripts = _without_check(RedisMemoryService.scripts, "add", _MEMORY_CHECK)


class SessionsWithoutIdempotency(RedisSessionHistoryService):
    """RedisSessionHistoryService whose append script stores every message."""

    scripts = _without_check(RedisSessionHistoryService.scripts, "append", _SESSION_CHECK)


SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "ge", "hu", "ji"]


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda _: rng.random())


class Corpus:
    """Deterministic synthetic chat turns and queries."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(20_000, self.rng)
        # Zipf weights: the word of rank r is drawn with probability ~ 1 / r.
        self.weights = [1.0 / (rank + 1) for rank in range(len(self.words))]

    def message(self) -> Message:
        count = self.rng.randint(8, 24)
        text = " ".join(self.rng.choices(self.words, self.weights, k=count))
        return Message(role="user", content=[TextContent(text=text)])

    def messages(self, count: int) -> list[Message]:
        return [self.message() for _ in range(count)]

    def query(self) -> str:
        return " ".join(self.rng.choice(self.words[50:5000]) for _ in range(3))


async def _fill(memory: RedisMemoryService, corpus: Corpus, user: str, count: int) -> None:
    for start in range(0, count, 200):
        await memory.add_memory(user, corpus.messages(min(200, count - start)), f"s{start // 2000}")


async def _per_call_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        await call()
    return (time.perf_counter() - started) * 1000 / repeats


async def _p50_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _line(name: str, value: str, goal: str) -> None:
    print(f"{name:<58} {value:>14}   goal {goal}")


async def _append(url: str, corpus: Corpus) -> None:
    connection = RedisConnection(url=url, key_prefix="bench-append")
    memory = RedisMemoryService(connection=connection)
    sessions = RedisSessionHistoryService(connection=connection)
    memory_without = MemoryWithoutIdempotency(connection=connection)
    sessions_without = SessionsWithoutIdempotency(connection=connection)
    async with memory, sessions, memory_without, sessions_without:
        # Per call and history: the mean of each turn, with and without the id check.
        results: dict[tuple[str, int, bool], list[float]] = {}
        # Warm up connections, loaded scripts and the stemmer's cache before measuring.
        for message in corpus.messages(100):
            for service in (memory, memory_without):
                await service.add_memory("append-warm-up", [message.model_copy()], "s")
            for history_service in (sessions, sessions_without):
                warm = Session(id="s", user_id="append-warm-up")
                await history_service.append_message(warm, message.model_copy())
        for history in (100, 4000):
            user = f"append-{history}"
            session = Session(id="s", user_id=user)
            for start in range(0, history, 200):
                batch = corpus.messages(min(200, history - start))
                await memory.add_memory(user, batch, "s")
                await sessions.append_message(session.model_copy(), batch)
            pending = iter(corpus.messages(1600))
            # In turns, so a machine busy with something else slows both alike.
            for _ in range(8):
                for checked in (True, False):
                    adder = memory if checked else memory_without
                    appender = sessions if checked else sessions_without

                    async def add(
                        user: str = user,
                        pending: Iterator[Message] = pending,
                        adder: RedisMemoryService = adder,
                    ) -> None:
                        await adder.add_memory(user, [next(pending)], "s")

                    async def append(
                        session: Session = session,
                        pending: Iterator[Message] = pending,
                        appender: RedisSessionHistoryService = appender,
                    ) -> None:
                        await appender.append_message(session.model_copy(), next(pending))

                    results.setdefault(("add_memory", history, checked), []).append(
                        await _per_call_ms(add, 50)
                    )
                    results.setdefault(("append_message", history, checked), []).append(
                        await _per_call_ms(append, 50)
                    )
        for name in ("add_memory", "append_message"):
            small = statistics.median(results[(name, 100, True)])
            large = statistics.median(results[(name, 4000, True)])
            without = statistics.median(results[(name, 4000, False)])
            _line(f"{name} per call at history 100", f"{small:.3f} ms", "<= 0.5 ms")
            _line(f"{name} per call at history 4,000", f"{large:.3f} ms", "<= 0.5 ms")
            _line(f"{name} ratio 4,000 / 100", f"{large / small:.2f}", "<= 1.3")
            _line(
                "  without the message-id check, at history 4,000",
                f"{without:.3f} ms",
                "(cost of idempotency)",
            )
            _line("  cost of idempotency per call", f"{large - without:+.3f} ms", "")
        for user in ("append-warm-up", "append-100", "append-4000"):
            await memory.delete_memory(user)
            await sessions.delete_session(user, "s")


async def _search_and_list(url: str, corpus: Corpus, sizes: tuple[int, int]) -> None:
    memory = RedisMemoryService(connection=RedisConnection(url=url, key_prefix="bench-search"))
    async with memory:
        filled = 0
        for size, goal in zip(sizes, ("<= 3 ms", "<= 10 ms"), strict=True):
            started = time.perf_counter()
            await _fill(memory, corpus, "reader", size - filled)
            filled = size
            print(f"  (stored {size:,} memories in {time.perf_counter() - started:.1f} s)")
            queries = [corpus.query() for _ in range(200)]
            found = [len(await memory.search_memory("reader", q, {"top_k": 10})) for q in queries]
            remaining = iter(queries)

            async def search(remaining: Iterator[str] = remaining) -> None:
                await memory.search_memory_hits("reader", next(remaining), {"top_k": 10})

            p50 = await _p50_ms(search, 150)
            _line(
                f"search p50 at {size:,} memories (avg {statistics.mean(found):.1f} hits)",
                f"{p50:.2f} ms",
                goal,
            )
            if size == sizes[0]:

                async def one_page(pages: int = size // 10) -> None:
                    page = corpus.rng.randint(1, pages)
                    await memory.list_memory("reader", {"page_num": page, "page_size": 10})

                p50 = await _p50_ms(one_page, 300)
                _line(
                    f"list_memory page p50 at {size:,} (random page of 10)",
                    f"{p50:.3f} ms",
                    "<= 2 ms",
                )
        await memory.delete_memory("reader")


async def _search_against_peers(url: str, corpus: Corpus, size: int, held: int) -> None:
    """Search p50 of agentmem's Redis and in-memory backends and of AgentScope Runtime
    1.0.5's Redis service, on the same memories, for queries of three words, one of which
    about ``held`` memories hold.

    The headline figure is that of queries searched before (the search cache warm);
    beside it: queries never searched before, searches right after another service
    instance (another process) added a memory, and a service that keeps nothing
    between searches (``search_cache_users=0``).
    """
    messages = corpus.messages(size)
    sessions = [f"s{at // 2000}" for at in range(0, size, 200)]
    holders: Counter[str] = Counter()
    for message in messages:
        holders.update(term_counts(message.searchable_text()).keys())
    # Words of the vocabulary whose term is held by held +- 15% memories.
    words = [
        word
        for word in corpus.words
        if (terms := analyze(word)) and abs(holders[terms[0]] - held) <= 0.15 * held
    ]

    def queries(count: int) -> list[str]:
        # Each with two words drawn as in Corpus.query.
        return [
            " ".join([words[at % len(words)], *corpus.query().split()[:2]]) for at in range(count)
        ]

    known, fresh = queries(40), queries(200)
    filters = {"top_k": 10}
    connection = RedisConnection(url=url, key_prefix="bench-peers")
    memory = RedisMemoryService(connection=connection)
    writer = RedisMemoryService(connection=connection)
    uncached = RedisMemoryService(connection=connection, search_cache_users=0)
    reference = InMemoryMemoryService()
    async with memory, writer, uncached, reference:
        for service in (memory, reference):
            for at, session in zip(range(0, size, 200), sessions, strict=True):
                await service.add_memory("reader", messages[at : at + 200], session)
        # The same ids, scores and order from both backends.
        for query in known:
            found = await memory.search_memory_hits("reader", query, filters)
            expected = await reference.search_memory_hits("reader", query, filters)
            if [(h.message.id, h.score) for h in found] != [
                (h.message.id, h.score) for h in expected
            ]:
                raise RuntimeError(f"Redis and in-memory results differ for {query!r}")
        mean_held = statistics.mean(holders[analyze(word)[0]] for word in words)
        print(
            f"  ({len(words)} words held by {mean_held:.0f} memories on average, "
            f"each in 3-word queries; top_k 10)"
        )

        def cycling(service: Any, queries: list[str]) -> Callable[[], Awaitable[Any]]:
            remaining = iter(queries * 100)
            return lambda: service.search_memory_hits("reader", next(remaining), filters)

        redis_p50 = await _p50_ms(cycling(memory, known), 200)
        memory_p50 = await _p50_ms(cycling(reference, known), 200)
        uncached_p50 = await _p50_ms(cycling(uncached, known), 200)
        fresh_p50 = await _p50_ms(cycling(memory, fresh), len(fresh))
        added = iter(corpus.messages(200))
        timings = []
        for query in known * 5:
            await writer.add_memory("reader", [next(added)], sessions[-1])
            started = time.perf_counter()
            await memory.search_memory_hits("reader", query, filters)
            timings.append((time.perf_counter() - started) * 1000)
        _line(
            f"search p50 at {size:,}, a word held by ~{held} memories",
            f"{redis_p50:.2f} ms",
            "<= 2 ms",
        )
        _line("  in-memory backend, same data and queries", f"{memory_p50:.2f} ms", "")
        _line("  queries not searched before", f"{fresh_p50:.2f} ms", "")
        _line(
            "  right after another instance added a memory",
            f"{statistics.median(timings):.2f} ms",
            "",
        )
        _line("  without the search cache", f"{uncached_p50:.2f} ms", "")
        await memory.delete_memory("reader")
    if PeerMemoryService is None:
        _line("  AgentScope Runtime 1.0.5", "not importable", "")
        return
    peer = PeerMemoryService(redis_url=url)
    await peer.start()
    for at, session in zip(range(0, size, 200), sessions, strict=True):
        batch = [
            PeerMessage.model_validate(m.model_dump(mode="json")) for m in messages[at : at + 200]
        ]
        await peer.add_memory("reader", batch, session)
    remaining = iter(known * 10)

    async def peer_search() -> None:
        query = {"role": "user", "content": [{"type": "text", "text": next(remaining)}]}
        await peer.search_memory("reader", [PeerMessage.model_validate(query)], filters)

    peer_p50 = await _p50_ms(peer_search, 30)
    _line("  AgentScope Runtime 1.0.5, same Redis and data", f"{peer_p50:.1f} ms", "")
    _line("  ratio AgentScope Runtime / agentmem Redis", f"{peer_p50 / redis_p50:.0f}x", ">= 50x")
    await peer.delete_memory("reader")
    await peer.stop()


async def _throughput(url: str, corpus: Corpus, writes: int) -> None:
    payloads = [message.model_dump_json() for message in corpus.messages(writes)]
    messages = [Message.model_validate_json(payload) for payload in payloads]
    writers = 50
    bare = aioredis.Redis.from_url(url, max_connections=writers)
    connection = RedisConnection(url=url, key_prefix="bench-throughput", max_connections=writers)
    sessions = RedisSessionHistoryService(connection=connection)
    memory = RedisMemoryService(connection=connection)

    async def run(write: Callable[[int], Awaitable[Any]]) -> float:
        async def writer(first: int) -> None:
            for index in range(first, writes, writers):
                await write(index)

        started = time.perf_counter()
        await asyncio.gather(*(writer(first) for first in range(writers)))
        return writes / (time.perf_counter() - started)

    async with sessions, memory:
        baseline = await run(lambda i: bare.rpush(f"bench-bare:{i % writers}", payloads[i]))
        appends = await run(
            lambda i: sessions.append_message(
                Session(id=f"s{i % writers}", user_id="w"), messages[i]
            )
        )
        adds = await run(lambda i: memory.add_memory("w", [messages[i]], f"s{i % writers}"))
        _line("bare redis-py RPUSH, 50 writers", f"{baseline:,.0f} /s", "(baseline)")
        _line("append_message, 50 writers", f"{appends:,.0f} /s", ">= 50% of baseline")
        _line("  ratio to baseline", f"{appends / baseline:.0%}", ">= 50%")
        _line("add_memory (indexed), 50 writers", f"{adds:,.0f} /s", "")
        _line("  ratio to baseline", f"{adds / baseline:.0%}", "")
        await memory.delete_memory("w")
        for index in range(writers):
            await sessions.delete_session("w", f"s{index}")
    await bare.delete(*(f"bench-bare:{i}" for i in range(writers)))
    await bare.aclose()


async def _memory_use(url: str, corpus: Corpus, count: int) -> None:
    client = aioredis.Redis.from_url(url)
    messages = corpus.messages(count)
    json_bytes = sum(len(message.model_dump_json().encode()) for message in messages)
    connection = RedisConnection(url=url, key_prefix="bench-size")
    print(f"  (message JSON: {json_bytes / count:.0f} bytes on average)")

    async def used() -> int:
        # Deleted data is freed in the background (UNLINK): wait until it is.
        for _ in range(1000):
            info = await client.info("memory")
            if not int(info["lazyfree_pending_objects"]):
                return int(info["used_memory"])
            await asyncio.sleep(0.01)
        raise RuntimeError("Redis did not free deleted data within 10 s")

    ratios: dict[tuple[str, bool], float] = {}
    for checked in (True, False):
        memory = (RedisMemoryService if checked else MemoryWithoutIdempotency)(
            connection=connection
        )
        sessions = (RedisSessionHistoryService if checked else SessionsWithoutIdempotency)(
            connection=connection
        )
        async with memory, sessions:
            before = await used()
            # Batches of 20 messages, each written by one script.
            for start in range(0, count, 20):
                batch = messages[start : start + 20]
                await memory.add_memory("size", batch, f"s{start // 2000}")
            after_memory = await used()
            session = Session(id="s", user_id="size")
            for start in range(0, count, 200):
                await sessions.append_message(session.model_copy(), messages[start : start + 200])
            after_sessions = await used()
            ratios["memory service", checked] = (after_memory - before) / json_bytes
            ratios["session history", checked] = (after_sessions - after_memory) / json_bytes
            await memory.delete_memory("size")
            await sessions.delete_session("size", "s")
    for name in ("memory service", "session history"):
        _line(f"{name}: Redis bytes per message / JSON size", f"{ratios[name, True]:.2f}x", "<= 2x")
        _line("  without the message-id check", f"{ratios[name, False]:.2f}x", "")
    await client.aclose()


async def main(quick: bool, only_peers: bool) -> None:
    corpus = Corpus()
    with RedisServer() as server:
        async with aioredis.Redis.from_url(server.url) as client:
            info = await client.info("server")
        print(f"Redis {info['redis_version']} on {server.url}, quick={quick}\n")
        if only_peers:
            await _search_against_peers(server.url, corpus, 10_000, 400)
            return
        await _append(server.url, corpus)
        await _search_and_list(server.url, corpus, (10_000, 20_000) if quick else (10_000, 100_000))
        await _search_against_peers(server.url, corpus, 10_000, 400)
        await _throughput(server.url, corpus, 5_000 if quick else 20_000)
        await _memory_use(server.url, corpus, 5_000 if quick else 20_000)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only-peers", action="store_true", help="only the search against the other services"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.only_peers))
