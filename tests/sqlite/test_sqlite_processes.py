"""Several processes on one SQLite file, and a process killed in the middle of writing.

The processes are real ones (``tests/sqlite/worker.py``), so the file's locks, not a
lock of this process, keep their writes apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import pytest

from agentmem import SQLiteMemoryService, SQLiteSessionHistoryService, SQLiteStateService
from tests.helpers import text_message, texts
from tests.sqlite.worker import BATCH

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 100


@asynccontextmanager
async def _worker(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``tests/sqlite/worker.py`` with ``args`` in a process of its own, killed at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sqlite.worker",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        (result,) = connection.execute("PRAGMA integrity_check").fetchone()
    return str(result)


async def test_two_processes_of_100_writers_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    # Both start on a file that does not exist yet, so they also race to create it.
    path = tmp_path / "shared.db"
    async with (
        _worker("writers", str(path), "a", str(WRITERS)) as first,
        _worker("writers", str(path), "b", str(WRITERS)) as second,
    ):
        workers = (first, second)
        for worker in workers:
            assert worker.stdout is not None
            assert await asyncio.wait_for(worker.stdout.readline(), 60) == b"ready\n"
        # The file's write lock is held while both start, so that all their writers wait
        # for it at once and then compete for it.
        with closing(sqlite3.connect(path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            await asyncio.sleep(0.5)
            blocker.execute("COMMIT")
        outputs = await asyncio.wait_for(
            asyncio.gather(*(worker.communicate() for worker in workers)), 120
        )
    for worker, (_, errors) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, errors.decode()
    total = 2 * WRITERS
    rounds = [number for out, _ in outputs for number in json.loads(out.splitlines()[-1])]
    assert sorted(rounds) == list(range(1, total + 1))

    expected = sorted(f"{tag} note {n}" for tag in ("a", "b") for n in range(WRITERS))
    async with (
        SQLiteMemoryService(path) as memory,
        SQLiteSessionHistoryService(path) as sessions,
        SQLiteStateService(path) as states,
    ):
        assert sorted(texts(await memory.list_memory("u", {"page_size": 1000}))) == expected
        assert len(await memory.search_memory("u", "note", {"top_k": 1000})) == total
        history = texts((await sessions.get_session("u", "s")).messages)
        assert sorted(history) == expected
        assert await states.list_states("u", "s") == list(range(1, total + 1))
        positions = await memory.run(
            lambda connection: connection.execute("SELECT position FROM memory_docs").fetchall()
        )
    # Every memory took its own place in the session.
    assert sorted(position for (position,) in positions) == list(range(total))
    assert _integrity(path) == "ok"


async def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    # They race to check the file, switch it to WAL mode and create the schema: each must
    # see the file either empty or complete, and wait for the others rather than fail.
    path = tmp_path / "new.db"
    async with contextlib.AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(_worker("writers", str(path), f"w{n}", "1"))
            for n in range(8)
        ]
        for worker in workers:
            assert worker.stdout is not None and worker.stderr is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 60)
            if line != b"ready\n":
                pytest.fail((await worker.stderr.read()).decode()[-2000:])
        outputs = await asyncio.wait_for(
            asyncio.gather(*(worker.communicate(b"go\n") for worker in workers)), 120
        )
    for worker, (_, errors) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, errors.decode()
    assert _integrity(path) == "ok"


async def test_a_process_killed_mid_write_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    acknowledged: list[int] = []
    async with _worker("crash", str(path)) as worker:
        assert worker.stdout is not None
        while len(acknowledged) < 30:
            line = await asyncio.wait_for(worker.stdout.readline(), 60)
            assert line, "the writer stopped"
            acknowledged.append(int(line))
        # Killed while it writes the next batch (it writes without pause).
        worker.kill()
        await worker.wait()
    assert _integrity(path) == "ok"
    async with (
        SQLiteMemoryService(path) as memory,
        SQLiteSessionHistoryService(path) as sessions,
        SQLiteStateService(path) as states,
    ):
        stored = set(texts(await memory.list_memory("u", {"page_size": 10_000})))
        history = texts((await sessions.get_session("u", "s")).messages)
        rounds = await states.list_states("u", "s")
        for batch in acknowledged:
            notes = [f"batch {batch} note {number}" for number in range(BATCH)]
            assert stored.issuperset(notes)
            assert history[batch * BATCH : (batch + 1) * BATCH] == notes
            assert batch + 1 in rounds
        # Whatever the last batch got to store, it stored whole or not at all.
        assert len(stored) % BATCH == 0
        assert len(history) % BATCH == 0
        # The file takes writes again.
        await memory.add_memory("u", [text_message("after the crash")])
