"""Sessions in a SQLite file: one row per session, one per message."""

from __future__ import annotations

import sqlite3

from typing_extensions import override

from agentmem.schemas.agent_schemas import Message
from agentmem.services._sqlite import (
    SQLiteServiceBase,
    decode_message,
    read_transaction,
    write_transaction,
)
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = ["SQLiteSessionHistoryService"]

_SESSION_KEY = "SELECT session_key FROM history_sessions WHERE user_id = ? AND session_id = ?"


class SQLiteSessionHistoryService(SQLiteServiceBase, SessionHistoryService):
    """Sessions in a SQLite file: persistent, shared by processes, no server.

    ``path`` (default ``agentmem.db`` in the working directory), ``busy_timeout`` and
    ``synchronous`` as :class:`agentmem.services._sqlite.SQLiteServiceBase` says; the
    file may also hold the data of :class:`SQLiteMemoryService` and
    :class:`SQLiteStateService`.

    An append is one transaction, O(messages appended) whatever the session's length,
    and reading a session reads its messages in one indexed range. A message that
    cannot be decoded makes ``get_session`` raise
    :class:`agentmem.errors.CorruptDataError`; other sessions stay readable.
    """

    @override
    async def _create_session(self, user_id: str, session_id: str) -> None:
        def create(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                # An existing session is emptied and keeps its place in the creation order.
                row = connection.execute(_SESSION_KEY, (user_id, session_id)).fetchone()
                if row is None:
                    _insert_session(connection, user_id, session_id)
                else:
                    connection.execute("DELETE FROM history_messages WHERE session_key = ?", row)

        await self.run(create)

    @override
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        def read(connection: sqlite3.Connection) -> list[str]:
            with read_transaction(connection):
                row = connection.execute(_SESSION_KEY, (user_id, session_id)).fetchone()
                if row is None:
                    return []
                rows = connection.execute(
                    "SELECT message FROM history_messages WHERE session_key = ? "
                    "ORDER BY message_key",
                    row,
                ).fetchall()
            return [message for (message,) in rows]

        where = f"session {session_id!r} of user {user_id!r} in {self.path}"
        return [
            decode_message(raw, f"message {position} of {where}")
            for position, raw in enumerate(await self.run(read))
        ]

    @override
    async def _delete_session(self, user_id: str, session_id: str) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                row = connection.execute(_SESSION_KEY, (user_id, session_id)).fetchone()
                if row is not None:
                    connection.execute("DELETE FROM history_messages WHERE session_key = ?", row)
                    connection.execute("DELETE FROM history_sessions WHERE session_key = ?", row)

        await self.run(delete)

    @override
    async def _list_session_ids(self, user_id: str) -> list[str]:
        rows = await self.run(
            lambda connection: connection.execute(
                "SELECT session_id FROM history_sessions WHERE user_id = ? ORDER BY session_key",
                (user_id,),
            ).fetchall()
        )
        return [session_id for (session_id,) in rows]

    @override
    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        def append(connection: sqlite3.Connection) -> None:
            # Encoded before the write lock is taken, to hold it briefly.
            encoded = [
                message.__pydantic_serializer__.to_json(message).decode() for message in messages
            ]
            with write_transaction(connection):
                row = connection.execute(_SESSION_KEY, (user_id, session_id)).fetchone()
                (session_key,) = row or _insert_session(connection, user_id, session_id)
                connection.executemany(
                    "INSERT INTO history_messages (session_key, message) VALUES (?, ?)",
                    ((session_key, message) for message in encoded),
                )

        await self.run(append)


def _insert_session(connection: sqlite3.Connection, user_id: str, session_id: str) -> tuple[int]:
    row: tuple[int] = connection.execute(
        "INSERT INTO history_sessions (user_id, session_id) VALUES (?, ?) RETURNING session_key",
        (user_id, session_id),
    ).fetchone()
    return row
