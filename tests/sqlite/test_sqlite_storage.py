"""The SQLite file: persistence, its schema and migrations, damaged and foreign files,
the lifecycle, and sqlite3 kept off the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import agentmem.services._sqlite as sqlite_module
from agentmem import (
    BackendError,
    CorruptDataError,
    InvalidArgumentError,
    MemoryServiceFactory,
    ServiceNotStartedError,
    Session,
    SessionHistoryServiceFactory,
    SQLiteMemoryService,
    SQLiteSessionHistoryService,
    SQLiteStateService,
    StateServiceFactory,
)
from agentmem.services._sqlite import APPLICATION_ID, SCHEMA_VERSION
from tests.helpers import text_message, texts

SERVICES = [SQLiteMemoryService, SQLiteSessionHistoryService, SQLiteStateService]


def _raw(path: Path) -> closing[sqlite3.Connection]:
    """A plain sqlite3 connection, for looking at or damaging the file directly."""
    return closing(sqlite3.connect(path, isolation_level=None))


async def _fill(path: Path) -> None:
    async with (
        SQLiteMemoryService(path) as memory,
        SQLiteSessionHistoryService(path) as sessions,
        SQLiteStateService(path) as states,
    ):
        await memory.add_memory("u", [text_message("I paint sunrises by the lake")], "s")
        await sessions.append_message(Session(id="s", user_id="u"), text_message("hello"))
        await states.save_state("u", {"step": 1}, "s")


async def test_memory_sessions_and_state_survive_a_restart_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    await _fill(path)
    async with (
        SQLiteMemoryService(path) as memory,
        SQLiteSessionHistoryService(path) as sessions,
        SQLiteStateService(path) as states,
    ):
        assert texts(await memory.search_memory("u", "painting the sunrise")) == [
            "I paint sunrises by the lake"
        ]
        assert texts((await sessions.get_session("u", "s")).messages) == ["hello"]
        assert await states.export_state("u", "s") == {"step": 1}
    assert os.listdir(tmp_path) == ["agent.db"]


async def test_the_file_is_marked_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    await _fill(path)
    with _raw(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_file_of_an_older_version_is_migrated_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.db"
    await _fill(path)
    # A later release that adds a step to the migrations.
    step = ("CREATE TABLE later_feature (x INTEGER)", "INSERT INTO later_feature VALUES (7)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, step))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    async with SQLiteMemoryService(path) as memory:
        assert texts(await memory.list_memory("u")) == ["I paint sunrises by the lake"]
    # Opening again runs no step twice.
    async with SQLiteStateService(path) as states:
        assert await states.export_state("u", "s") == {"step": 1}
    with _raw(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
        assert connection.execute("SELECT x FROM later_feature").fetchall() == [(7,)]


async def test_a_file_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    await _fill(path)
    with _raw(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for service_class in SERVICES:
        service = service_class(path)
        with pytest.raises(BackendError, match="newer agentmem") as caught:
            await service.start()
        assert str(path) in str(caught.value)
        assert await service.health() is False
        with pytest.raises(ServiceNotStartedError):
            await service.run(lambda connection: None)


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just some text " * 200, bytes(range(256)) * 64],
    ids=["text", "binary"],
)
async def test_a_file_that_is_not_a_database_raises_a_typed_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    for service_class in SERVICES:
        with pytest.raises(CorruptDataError) as caught:
            await service_class(path).start()
        assert str(path) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == content


async def test_another_programs_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with _raw(path) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
        connection.execute("INSERT INTO customers VALUES ('Ann')")
    before = path.read_bytes()
    for service_class in SERVICES:
        with pytest.raises(CorruptDataError, match="not an agentmem database") as caught:
            await service_class(path).start()
        assert str(path) in str(caught.value)
        assert "customers" in str(caught.value)
    assert path.read_bytes() == before
    with _raw(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    with _raw(path) as connection:
        connection.execute("PRAGMA application_id = 42")
    with pytest.raises(CorruptDataError, match="application id is 0x2a"):
        await SQLiteStateService(path).start()


async def test_a_damaged_file_raises_a_typed_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    async with SQLiteMemoryService(path) as memory:
        for batch in range(20):
            messages = [text_message(f"note {batch} {n} about tea " * 20) for n in range(50)]
            await memory.add_memory("u", messages, f"s{batch}")
    # Pages past the first (which holds the schema) overwritten with garbage.
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(4 * page, len(data) - page, 7 * page):
        data[start : start + page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError) as caught:
        async with SQLiteMemoryService(path) as memory:
            await memory.list_memory("u", {"page_size": 10_000})
            await memory.search_memory("u", "tea")
            await memory.delete_memory("u", "s3")
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_undecodable_rows_raise_corrupt_data_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    await _fill(path)
    with _raw(path) as connection:
        connection.execute("UPDATE memory_docs SET message = 'not json'")
        connection.execute("UPDATE history_messages SET message = '{\"role\": 5}'")
        connection.execute("UPDATE state_rounds SET state = '[1, 2]'")
    async with (
        SQLiteMemoryService(path) as memory,
        SQLiteSessionHistoryService(path) as sessions,
        SQLiteStateService(path) as states,
    ):
        calls: list[Any] = [
            memory.list_memory("u"),
            memory.search_memory("u", "sunrise"),
            sessions.get_session("u", "s"),
            states.export_state("u", "s"),
        ]
        for call in calls:
            with pytest.raises(CorruptDataError) as caught:
                await call
            assert str(path) in str(caught.value)
        # Other users are not affected.
        await memory.add_memory("v", [text_message("fine")])
        assert texts(await memory.list_memory("v")) == ["fine"]


async def test_lifecycle(tmp_path: Path) -> None:
    for service_class in SERVICES:
        service = service_class(tmp_path / "agent.db")
        assert await service.health() is False
        with pytest.raises(ServiceNotStartedError):
            await service.run(lambda connection: None)
        await service.start()
        await service.start()
        assert await service.health() is True
        await service.stop()
        await service.stop()
        assert await service.health() is False
        async with service:
            assert await service.health() is True


async def test_memory_in_memory_is_kept_until_stop(tmp_path: Path) -> None:
    memory = SQLiteMemoryService(":memory:")
    async with memory:
        await memory.add_memory("u", [text_message("tea")])
        assert texts(await memory.search_memory("u", "tea")) == ["tea"]
    async with memory:
        assert await memory.list_memory("u") == []


@pytest.mark.parametrize(
    "options",
    [
        {"path": ""},
        {"path": 3},
        {"busy_timeout": -1},
        {"busy_timeout": float("nan")},
        {"busy_timeout": True},
        {"busy_timeout": "5"},
        {"synchronous": "OFF"},
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    for service_class in SERVICES:
        with pytest.raises(InvalidArgumentError):
            service_class(**options)


async def test_a_path_that_cannot_be_opened_raises_backend_error_naming_it(
    tmp_path: Path,
) -> None:
    for path in (tmp_path, tmp_path / "missing" / "agent.db"):
        with pytest.raises(BackendError) as caught:
            await SQLiteStateService(path).start()
        assert str(path) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_factories_create_sqlite_services_from_the_environment(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.db")
    for factory, prefix, service_class in (
        (MemoryServiceFactory, "MEMORY", SQLiteMemoryService),
        (SessionHistoryServiceFactory, "SESSION_HISTORY", SQLiteSessionHistoryService),
        (StateServiceFactory, "STATE", SQLiteStateService),
    ):
        environ = {
            f"{prefix}_BACKEND": "sqlite",
            f"{prefix}_SQLITE_PATH": path,
            f"{prefix}_SQLITE_BUSY_TIMEOUT": "2.5",
        }
        service: Any = factory.create(environ=environ)
        assert isinstance(service, service_class)
        assert (service.path, service.busy_timeout, service.synchronous) == (path, 2.5, "NORMAL")


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[Path]:
    """A file whose write lock another connection holds until the test ends."""
    path = tmp_path / "agent.db"
    await _fill(path)
    with _raw(path) as connection:
        connection.execute("BEGIN IMMEDIATE")
        yield path
        connection.execute("ROLLBACK")


async def test_a_write_waits_for_the_lock_without_blocking_the_event_loop(locked: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        async with SQLiteStateService(locked, busy_timeout=0.5) as states:
            with pytest.raises(BackendError) as caught:
                await states.save_state("u", {"step": 2}, "s")
            # Reads go on while another connection writes.
            assert await states.export_state("u", "s") == {"step": 1}
    finally:
        running.cancel()
    assert "database is locked" in str(caught.value)
    assert str(locked) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    # The loop ran on while the write waited half a second for the lock.
    assert ticks >= 20


async def test_every_sqlite_call_runs_in_the_connection_thread(tmp_path: Path) -> None:
    threads: set[int] = set()
    async with SQLiteMemoryService(tmp_path / "agent.db") as memory:
        await memory.run(
            lambda connection: connection.set_trace_callback(
                lambda _: threads.add(threading.get_ident())
            )
        )
        await memory.add_memory("u", [text_message("tea by the lake")], "s")
        await memory.search_memory("u", "tea")
        await memory.list_memory("u", {"session_id": "s"})
        await memory.delete_memory("u", "s")
    assert len(threads) == 1
    assert threading.get_ident() not in threads
