"""What the SQLite backends share: the database file, its schema and their connections.

One file may hold the data of all three SQLite services (memory, session history and
state); each service opens its own connection to it, and any number of processes may
open it at once.

Threads. A sqlite3 call blocks until the disk answers, so each connection lives in a
thread of its own: it is opened, used and closed there, and the service hands it
functions to run, one at a time and in the order given (:meth:`SQLiteServiceBase.run`).
The event loop never waits on the disk, and the connection never changes threads.

Concurrency. The file is in WAL mode, where readers never block writers nor each other.
Every write is one ``BEGIN IMMEDIATE`` transaction (:func:`write_transaction`), which
takes the file's write lock before it reads what it will change, so writers from any
number of processes are serialised by SQLite and never work from a stale read; a writer
that finds the lock taken waits for it up to ``busy_timeout`` seconds. A read of more
than one statement is one transaction (:func:`read_transaction`): it sees one state of
the file.

Durability. With ``synchronous="NORMAL"`` (the default) a write is in the WAL file when
the call returns: a process that dies, even by SIGKILL, loses no write that was
acknowledged, and the next connection recovers the file. Only a power loss or an
operating system crash can lose the last writes; ``synchronous="FULL"`` syncs each
commit to the disk, which closes that gap at the price of one sync per write.

Schema. The file carries agentmem's ``PRAGMA application_id`` and its schema version in
``PRAGMA user_version``. Opening a file of an older version migrates it in one
transaction (:data:`MIGRATIONS`), so a later release opens today's files; a file of a
newer version is refused. A file that is not a SQLite database, is damaged, or is
another program's database raises :class:`agentmem.errors.CorruptDataError` naming the
path: agentmem never writes to a file it does not recognise.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, get_args

from pydantic import ValidationError

from agentmem.errors import (
    AgentMemError,
    BackendError,
    CorruptDataError,
    InvalidArgumentError,
    ServiceNotStartedError,
    map_errors,
)
from agentmem.schemas.agent_schemas import Message
from agentmem.services.base import ServiceWithLifecycleManager

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_PATH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteServiceBase",
    "Synchronous",
    "decode_message",
    "json_list",
    "read_transaction",
    "write_transaction",
]

T = TypeVar("T")

#: How commits reach the disk; see the module docstring.
Synchronous = Literal["NORMAL", "FULL"]

#: The file a service opens when given no path, in the working directory.
DEFAULT_PATH = "agentmem.db"

#: ``PRAGMA application_id`` of agentmem's files: "agmm" in ASCII.
APPLICATION_ID = 0x61676D6D

# Version 1: the tables of the three services.
#
# Memory. A user's counters live in memory_users; its key is never reused (AUTOINCREMENT),
# nor is a memory's doc_id, so a cached view of a user's vectors can tell what is new
# (doc_id above what it read) from what was removed (``removals`` or the key changed).
# doc_id grows with insertion order, the recency order of ranking ties. ``position``
# numbers a session's memories from 0; sessions are deleted whole, so positions never
# shift. ``terms`` lists a memory's index terms, the postings to remove with it.
# memory_term_vectors holds, per user, the vector of the word behind each index term
# (semantic search only), with the doc_id of the memory that brought it.
#
# Session history. A session's row keeps its place in the creation order when it is
# emptied; messages are read back in the order of their keys.
#
# State. One row per user, session and round.
_V1 = (
    """
    CREATE TABLE memory_users (
        user_key INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL UNIQUE,
        doc_count INTEGER NOT NULL,
        total_length INTEGER NOT NULL,
        removals INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE memory_sessions (
        session_key INTEGER PRIMARY KEY,
        user_key INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        UNIQUE (user_key, session_id)
    )
    """,
    """
    CREATE TABLE memory_docs (
        doc_id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_key INTEGER NOT NULL,
        session_key INTEGER NOT NULL,
        position INTEGER NOT NULL,
        length INTEGER NOT NULL,
        created_at REAL NOT NULL,
        metadata TEXT,
        terms TEXT NOT NULL,
        message TEXT NOT NULL,
        vector BLOB
    )
    """,
    "CREATE INDEX memory_docs_by_user ON memory_docs (user_key)",
    "CREATE UNIQUE INDEX memory_docs_by_session ON memory_docs (session_key, position)",
    """
    CREATE TABLE memory_postings (
        user_key INTEGER NOT NULL,
        term TEXT NOT NULL,
        doc_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (user_key, term, doc_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE memory_term_vectors (
        user_key INTEGER NOT NULL,
        term TEXT NOT NULL,
        doc_id INTEGER NOT NULL,
        vector BLOB NOT NULL,
        UNIQUE (user_key, term)
    )
    """,
    "CREATE INDEX memory_term_vectors_by_doc ON memory_term_vectors (user_key, doc_id)",
    """
    CREATE TABLE history_sessions (
        session_key INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        UNIQUE (user_id, session_id)
    )
    """,
    """
    CREATE TABLE history_messages (
        message_key INTEGER PRIMARY KEY,
        session_key INTEGER NOT NULL,
        message TEXT NOT NULL
    )
    """,
    "CREATE INDEX history_messages_by_session ON history_messages (session_key)",
    """
    CREATE TABLE state_rounds (
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        round_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        UNIQUE (user_id, session_id, round_id)
    )
    """,
)

#: ``MIGRATIONS[i]`` holds the statements that bring a file from version ``i`` to
#: ``i + 1``; a release that changes the schema appends a step and never edits one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
#: The schema version this release writes.
SCHEMA_VERSION = len(MIGRATIONS)


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed at the end, rolled back on error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        # SQLite has rolled back already after some errors (a full disk, for one).
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction: every statement in it sees the same state of the file."""
    connection.execute("BEGIN")
    try:
        yield connection
    finally:
        if connection.in_transaction:
            connection.execute("COMMIT")


def json_list(values: Iterable[Any]) -> str:
    """``values`` as one JSON array parameter, for ``IN (SELECT value FROM json_each(?))``.

    One parameter holds any number of values, where ``IN (?, ?, ...)`` stops at
    SQLite's limit on parameters.
    """
    return json.dumps(list(values), ensure_ascii=False)


def decode_message(raw: str | bytes, where: str) -> Message:
    """The stored message ``raw``; ``where`` names it in the error if it cannot be read."""
    try:
        return Message.model_validate_json(raw)
    except ValidationError as exc:
        raise CorruptDataError(f"{where} cannot be decoded: {exc.errors()[0]['msg']}") from exc


def _tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return sorted(name for (name,) in rows)


def _identity(connection: sqlite3.Connection) -> tuple[int, int]:
    (application_id,) = connection.execute("PRAGMA application_id").fetchone()
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(application_id), int(version)


def _check_identity(connection: sqlite3.Connection, path: str) -> int:
    """The file's schema version (0 for a new, empty file); raises for a file that is
    not agentmem's or is of a newer version."""
    application_id, version = _identity(connection)
    if application_id == 0 and version == 0:
        tables = _tables(connection)
        if tables:
            raise CorruptDataError(
                f"{path} is not an agentmem database: it holds the tables "
                f"{', '.join(tables)} and no agentmem application id"
            )
        return 0
    if application_id != APPLICATION_ID:
        raise CorruptDataError(
            f"{path} is not an agentmem database: its application id is {application_id:#x}"
        )
    if version > SCHEMA_VERSION:
        raise BackendError(
            f"{path} was written by a newer agentmem (schema version {version}); this "
            f"release reads versions up to {SCHEMA_VERSION}: upgrade agentmem"
        )
    return version


def _migrate(connection: sqlite3.Connection, path: str) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, creating it if it is new."""
    with write_transaction(connection):
        # Read again under the write lock: another process may have migrated meanwhile.
        version = _check_identity(connection, path)
        for step in MIGRATIONS[version:]:
            for statement in step:
                connection.execute(statement)
        # PRAGMA takes no parameters; both values are integers of this module.
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _use_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL mode (it stays so), waiting up to ``busy_timeout``.

    Switching needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting, while another connection is switching it or creating the schema.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _open(path: str, busy_timeout: float, synchronous: Synchronous) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): the services open every transaction themselves.
    connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        # The file is checked before anything is written to it, WAL mode included, in
        # one read transaction: another process may be creating the schema meanwhile.
        with read_transaction(connection):
            version = _check_identity(connection, path)
        _use_wal(connection, busy_timeout)
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        # Up to 32 MiB of pages kept in the connection (SQLite's default is 2 MiB): the
        # postings and documents a search reads stay in memory between searches.
        connection.execute("PRAGMA cache_size = -32768")
        if version < SCHEMA_VERSION:
            _migrate(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _corruption(exc: Exception) -> bool:
    """Whether ``exc`` is SQLite saying the file is damaged or not a database."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class SQLiteServiceBase(ServiceWithLifecycleManager):
    """The connection and lifecycle of the SQLite services.

    ``path``: the database file (created if missing; ``":memory:"`` keeps the data in
    the connection, gone at ``stop()``). ``busy_timeout``: seconds a write waits for
    another connection's write to finish before it fails with
    :class:`agentmem.errors.BackendError`. ``synchronous``: ``"NORMAL"`` or ``"FULL"``,
    see :mod:`agentmem.services._sqlite`.

    The constructor touches nothing; ``start()`` opens the file, checks it and brings
    its schema up to date, and any use before it raises
    :class:`agentmem.errors.ServiceNotStartedError`. Errors name the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        busy_timeout: float = 30.0,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise InvalidArgumentError("path", f"must be a non-empty path, got {path!r}")
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, int | float)
            or not math.isfinite(busy_timeout)
            or busy_timeout < 0
        ):
            raise InvalidArgumentError(
                "busy_timeout", f"must be a finite number of seconds >= 0, got {busy_timeout!r}"
            )
        if synchronous not in get_args(Synchronous):
            raise InvalidArgumentError(
                "synchronous", f"must be 'NORMAL' or 'FULL', got {synchronous!r}"
            )
        self.path: str = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        self.synchronous: Synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    async def start(self) -> None:
        """Open the file in the connection's thread; create or migrate its schema."""
        if self._executor is not None:
            return
        # Set before the first await: calls made meanwhile queue behind the opening.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="agentmem-sqlite")
        try:
            with self._mapped("open the database"):
                await self._in_thread(self._open)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the connection once the calls already made have run."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in the connection's thread, after the calls made before."""
        return await self._in_thread(functools.partial(self._with_connection, work))

    async def _in_thread(self, function: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise ServiceNotStartedError(self)
        return await asyncio.get_running_loop().run_in_executor(executor, function)

    def _open(self) -> None:
        self._connection = _open(self.path, self.busy_timeout, self.synchronous)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _with_connection(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            # Queued behind an opening that failed.
            raise ServiceNotStartedError(self)
        return work(self._connection)

    async def _check_health(self) -> bool:
        row = await self.run(lambda connection: connection.execute("SELECT 1").fetchone())
        return bool(row == (1,))

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        # The path is part of the message: several files may be open at once.
        with map_errors(f"{type(self).__name__} on {self.path}: {action}", self._classify_error):
            yield

    def _classify_error(self, exc: Exception) -> type[AgentMemError] | None:
        return CorruptDataError if _corruption(exc) else None
