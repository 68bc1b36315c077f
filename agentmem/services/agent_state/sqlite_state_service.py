"""Agent state in a SQLite file: one row per user, session and round."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from typing_extensions import override

from agentmem.services._sqlite import SQLiteServiceBase, write_transaction
from agentmem.services.agent_state.state_service import StateService, decode_state, next_round

__all__ = ["SQLiteStateService"]

_SESSION = "user_id = ? AND session_id = ?"


def _rounds(user_id: str, session_id: str, round_id: int | None) -> tuple[str, tuple[Any, ...]]:
    """The condition and parameters selecting ``round_id``, or every round for None."""
    if round_id is None:
        return _SESSION, (user_id, session_id)
    return f"{_SESSION} AND round_id = ?", (user_id, session_id, round_id)


class SQLiteStateService(SQLiteServiceBase, StateService):
    """States in a SQLite file, as JSON text by round: persistent, no server.

    ``path`` (default ``agentmem.db`` in the working directory), ``busy_timeout`` and
    ``synchronous`` as :class:`agentmem.services._sqlite.SQLiteServiceBase` says; the
    file may also hold the data of :class:`SQLiteMemoryService` and
    :class:`SQLiteSessionHistoryService`.

    Choosing the next round and storing the state is one ``BEGIN IMMEDIATE``
    transaction, so concurrent saves from any number of processes get distinct rounds.
    A stored state that is not a JSON object makes ``export_state`` raise
    :class:`agentmem.errors.CorruptDataError`.
    """

    @override
    async def _save_state(
        self, user_id: str, session_id: str, state: dict[str, Any], round_id: int | None
    ) -> int:
        encoded = json.dumps(state, ensure_ascii=False, separators=(",", ":"))

        def save(connection: sqlite3.Connection) -> int:
            with write_transaction(connection):
                chosen = round_id
                if chosen is None:
                    (latest,) = connection.execute(
                        f"SELECT max(round_id) FROM state_rounds WHERE {_SESSION}",
                        (user_id, session_id),
                    ).fetchone()
                    chosen = next_round(latest)
                connection.execute(
                    "INSERT INTO state_rounds (user_id, session_id, round_id, state) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, session_id, round_id) "
                    "DO UPDATE SET state = excluded.state",
                    (user_id, session_id, chosen, encoded),
                )
                return chosen

        return await self.run(save)

    @override
    async def _load_state(
        self, user_id: str, session_id: str, round_id: int | None
    ) -> dict[str, Any] | None:
        where, args = _rounds(user_id, session_id, round_id)
        # Without a round: the latest one.
        sql = f"SELECT state FROM state_rounds WHERE {where} ORDER BY round_id DESC LIMIT 1"
        row = await self.run(lambda connection: connection.execute(sql, args).fetchone())
        if row is None:
            return None
        return decode_state(
            row[0], f"a state of session {session_id!r} of user {user_id!r} in {self.path}"
        )

    @override
    async def _list_rounds(self, user_id: str, session_id: str) -> list[int]:
        rows = await self.run(
            lambda connection: connection.execute(
                f"SELECT round_id FROM state_rounds WHERE {_SESSION} ORDER BY round_id",
                (user_id, session_id),
            ).fetchall()
        )
        return [round_id for (round_id,) in rows]

    @override
    async def _delete_state(self, user_id: str, session_id: str, round_id: int | None) -> None:
        where, args = _rounds(user_id, session_id, round_id)
        sql = f"DELETE FROM state_rounds WHERE {where}"

        def delete(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                connection.execute(sql, args)

        await self.run(delete)

    @override
    async def _list_state_sessions(self, user_id: str) -> list[str]:
        rows = await self.run(
            lambda connection: connection.execute(
                "SELECT DISTINCT session_id FROM state_rounds WHERE user_id = ?", (user_id,)
            ).fetchall()
        )
        return [session_id for (session_id,) in rows]
