"""Figures of the SQLite backends, beside LangGraph's and Google ADK's SQLite stores.

The peers are not agentmem's dependencies: they go in an environment of their own::

    python3.11 -m venv .venv-bench
    .venv-bench/bin/pip install -e ".[redis]" langgraph-checkpoint-sqlite "google-adk[db]"
    .venv-bench/bin/python benchmarks/sqlite_bench.py          # --quick: 1k and 10k only

(``[redis]`` because the synthetic chat turns and the timers are those of
``redis_bench.py``.) Every
file is in one temporary directory on the same disk, and every figure is of the same
run. Prints, at 1,000, 10,000 and 100,000 memories of one user:

- ``add_memory`` of one message per call (indexed for search), and LangGraph's
  ``SqliteStore.put`` and ``AsyncSqliteStore.aput`` of the same message's JSON;
- a page of 10 of ``list_memory`` at a random offset, and the same page of
  ``SqliteStore.search(namespace, limit=10, offset=...)``;
- search p50 (``top_k`` 10; queries of 3 content words), which the peers do not offer
  without an embedding model;

then ``append_message`` of one message per call to a session of 100 and of 1,000
messages, beside ADK's ``DatabaseSessionService.append_event`` (``sqlite+aiosqlite``)
and its ``SqliteSessionService`` on the same text.

The peers run with their defaults (rollback journal, ``synchronous=FULL``: a sync to the
disk per commit). agentmem's default is WAL with ``synchronous=NORMAL``: nothing
acknowledged is lost when a process dies, the last writes may be lost on a power loss.
So that the comparison also holds at equal durability, LangGraph's ``SqliteStore`` is
measured a second time on a connection set to WAL and ``synchronous=NORMAL``, and
agentmem a second time with ``synchronous="FULL"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from google.adk.events import Event
from google.adk.sessions import DatabaseSessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types
from langgraph.store.base import PutOp
from langgraph.store.sqlite import SqliteStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from redis_bench import Corpus, _p50_ms, _per_call_ms

from agentmem import Message, Session, SQLiteMemoryService, SQLiteSessionHistoryService

CALLS = 200
FILL_BATCH = 500


def _line(name: str, value: str, goal: str = "") -> None:
    print(f"{name:<64} {value:>12}   {goal}")


class Peers:
    """LangGraph's stores, filled with the same messages as agentmem."""

    NAMESPACE = ("memories", "reader")

    def __init__(self, directory: str) -> None:
        self.default = SqliteStore(
            sqlite3.connect(
                os.path.join(directory, "langgraph.db"),
                check_same_thread=False,
                isolation_level=None,
            )
        )
        tuned = sqlite3.connect(
            os.path.join(directory, "langgraph-wal.db"),
            check_same_thread=False,
            isolation_level=None,
        )
        tuned.execute("PRAGMA journal_mode = WAL")
        tuned.execute("PRAGMA synchronous = NORMAL")
        self.tuned = SqliteStore(tuned)
        self.stores = {"SqliteStore": self.default, "SqliteStore, WAL + NORMAL": self.tuned}
        for store in self.stores.values():
            store.setup()

    def fill(self, messages: list[Message]) -> None:
        for store in self.stores.values():
            store.batch(
                [
                    PutOp(self.NAMESPACE, message.id, message.model_dump(mode="json"))
                    for message in messages
                ]
            )


class Stores:
    """agentmem's memory service and LangGraph's stores, filled with the same messages."""

    def __init__(self, directory: str, aio: AsyncSqliteStore) -> None:
        self.memory = SQLiteMemoryService(os.path.join(directory, "agentmem.db"))
        self.durable = SQLiteMemoryService(
            os.path.join(directory, "agentmem-full.db"), synchronous="FULL"
        )
        self.peers = Peers(directory)
        self.aio = aio


async def _measure(stores: Stores, corpus: Corpus, size: int) -> None:
    """The figures at ``size`` memories of the user "reader"."""
    pending: Iterator[Message] = iter(corpus.messages(5 * CALLS))

    async def add(service: SQLiteMemoryService) -> None:
        await service.add_memory("writer", [next(pending)], "s")

    def put(store: SqliteStore) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            message = next(pending)
            store.put(("memories", "writer"), message.id, message.model_dump(mode="json"))

        return call

    async def aput() -> None:
        message = next(pending)
        await stores.aio.aput(("memories", "writer"), message.id, message.model_dump(mode="json"))

    _line(
        "agentmem add_memory, 1 message (WAL, NORMAL)",
        f"{await _per_call_ms(lambda: add(stores.memory), CALLS):.3f} ms",
    )
    _line(
        "agentmem add_memory, 1 message (WAL, FULL)",
        f"{await _per_call_ms(lambda: add(stores.durable), CALLS):.3f} ms",
    )
    for name, store in stores.peers.stores.items():
        _line(f"LangGraph {name}.put", f"{await _per_call_ms(put(store), CALLS):.3f} ms")
    _line("LangGraph AsyncSqliteStore.aput", f"{await _per_call_ms(aput, CALLS):.3f} ms")

    def offset() -> int:
        return corpus.rng.randrange(0, size - 10)

    async def page() -> None:
        number = offset() // 10 + 1
        await stores.memory.list_memory("reader", {"page_num": number, "page_size": 10})

    def peer_page(store: SqliteStore) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            store.search(Peers.NAMESPACE, limit=10, offset=offset())

        return call

    _line(
        "agentmem list_memory, page of 10 at a random offset, p50",
        f"{await _p50_ms(page, CALLS):.3f} ms",
    )
    for name, store in stores.peers.stores.items():
        p50 = await _p50_ms(peer_page(store), CALLS)
        _line(f"LangGraph {name}.search(limit=10, offset), p50", f"{p50:.3f} ms")

    queries = iter([corpus.query() for _ in range(CALLS + 50)])
    hits = [len(await stores.memory.search_memory("reader", next(queries))) for _ in range(50)]

    async def search() -> None:
        await stores.memory.search_memory_hits("reader", next(queries), {"top_k": 10})

    goal = {10_000: "goal <= 2 ms", 100_000: "goal <= 2x the 10,000 figure"}.get(size, "")
    _line(
        f"agentmem search p50, top 10 (avg {statistics.mean(hits):.0f} hits of 100)",
        f"{await _p50_ms(search, CALLS):.3f} ms",
        goal,
    )


async def _memory(directory: str, corpus: Corpus, sizes: tuple[int, ...]) -> None:
    async with AsyncSqliteStore.from_conn_string(
        os.path.join(directory, "langgraph-async.db")
    ) as aio:
        await aio.setup()
        stores = Stores(directory, aio)
        async with stores.memory, stores.durable:
            # Warm up the stemmer's cache and the statements before measuring.
            for message in corpus.messages(300):
                await stores.memory.add_memory("warm-up", [message], "s")
            await stores.memory.delete_memory("warm-up")
            filled = 0
            for size in sizes:
                started = time.perf_counter()
                while filled < size:
                    batch = corpus.messages(min(FILL_BATCH, size - filled))
                    await stores.memory.add_memory("reader", batch, f"s{filled // 2000}")
                    stores.peers.fill(batch)
                    filled += len(batch)
                print(f"\n{size:,} memories (filled in {time.perf_counter() - started:.1f} s)")
                await _measure(stores, corpus, size)
    for store in stores.peers.stores.values():
        store.conn.close()


def _event(text: str) -> Event:
    return Event(
        author="user",
        invocation_id="bench",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )


async def _sessions(directory: str, corpus: Corpus) -> None:
    print("\nsession appends, one message per call")
    sessions = SQLiteSessionHistoryService(os.path.join(directory, "agentmem-sessions.db"))
    database = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{directory}/adk.db")
    sqlite = SqliteSessionService(db_path=os.path.join(directory, "adk-sqlite.db"))
    async with sessions:
        for history in (100, 1000):
            messages = corpus.messages(history + CALLS)
            texts = [message.get_text_content() or "" for message in messages]
            session = Session(id=f"s{history}", user_id="u")
            await sessions.append_message(session, messages[:history])
            pending = iter(messages[history:])

            async def append(
                session: Session = session, pending: Iterator[Message] = pending
            ) -> None:
                await sessions.append_message(session, next(pending))

            per_call = await _per_call_ms(append, CALLS)
            _line(f"agentmem append_message at {history:,} messages", f"{per_call:.3f} ms")
            for name, peer in (
                ("DatabaseSessionService", database),
                ("SqliteSessionService", sqlite),
            ):
                adk_session = await peer.create_session(
                    app_name="bench", user_id="u", session_id=f"s{history}"
                )
                for text in texts[:history]:
                    await peer.append_event(adk_session, _event(text))
                peer_pending = iter(texts[history:])

                async def append_event(
                    peer: Any = peer,
                    adk_session: Any = adk_session,
                    peer_pending: Iterator[str] = peer_pending,
                ) -> None:
                    await peer.append_event(adk_session, _event(next(peer_pending)))

                per_call = await _per_call_ms(append_event, CALLS)
                _line(f"ADK {name}.append_event at {history:,} events", f"{per_call:.3f} ms")
    await database.close()


async def main(quick: bool) -> None:
    corpus = Corpus()
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="agentmem-bench-") as directory:
        print(f"SQLite {sqlite3.sqlite_version}, files in {directory}, quick={quick}")
        await _memory(directory, corpus, sizes)
        await _sessions(directory, corpus)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 memories only")
    asyncio.run(main(parser.parse_args().quick))
