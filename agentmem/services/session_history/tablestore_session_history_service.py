"""Sessions in Alibaba Cloud Tablestore, through ``tablestore-for-agent-memory``.

A session table keyed by (user, session) and a message table keyed by (session, time,
message), both read by primary key: what was written is read back at once, without the
delay of a search index.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from typing_extensions import Unpack, override

from agentmem._validation import check_id
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message
from agentmem.services.session_history.session_history_service import SessionHistoryService
from agentmem.services.utils import MicrosecondClock, decode_message, id_key, stored_text
from agentmem.services.utils.tablestore_service_utils import (
    TablestoreConnection,
    TablestoreCredentials,
    write_all,
)

__all__ = ["TablestoreSessionHistoryService"]

# Columns of a session row: the caller's ids (the keys are hashes of them) and the time
# of creation, which orders list_sessions.
_USER_ID = "user_id_text"
_SESSION_ID = "session_id_text"
_CREATED_AT = "created_at"


def _memory_store() -> Any:
    from tablestore_for_agent_memory.memory.async_memory_store import AsyncMemoryStore

    return AsyncMemoryStore


def _created_at(row: Any) -> int:
    """When the session of a session row was created (the order of list_sessions)."""
    created_at = (row.metadata or {}).get(_CREATED_AT)
    if isinstance(created_at, bool) or not isinstance(created_at, int):
        raise CorruptDataError(f"Tablestore session row {row.session_id!r} has no creation time")
    return created_at


class TablestoreSessionHistoryService(SessionHistoryService):
    """Sessions and messages in two Tablestore tables.

    Needs ``agentmem-services[tablestore]``.

    Give either ``tablestore_client`` (an ``AsyncOTSClient``, borrowed: the service
    never closes it) or ``end_point``, ``instance_name``, ``access_key_id`` and
    ``access_key_secret`` (the service then builds, owns and closes its client).
    ``start()`` creates the tables and their secondary indexes if missing.

    Rows are keyed by SHA-256 hashes of the user and session ids, so ids of any length
    or characters are kept apart; each message is stored whole as JSON (one column holds
    up to 2 MB). Messages are ordered by the microsecond of their writing. Message rows
    are written one by one: when a write fails, the rows the call wrote are deleted
    again, so the call appends nothing unless that deletion fails too (a session it
    stored stays, empty).

    ``store_factory`` replaces ``AsyncMemoryStore``: it is called with that class's
    keyword arguments (a subclass, or an in-memory stand-in for tests).

    Cost per call, in Tablestore requests: ``append_message`` one read of the session
    row (and one write of it for a new session) and one write per message;
    ``get_session`` one read plus one range read per 5000 messages; ``create_session``
    one read and one write of the session row plus the deletion of the session's
    messages; ``delete_session`` one write plus that deletion; ``list_sessions`` one
    range read per 5000 sessions.
    """

    def __init__(
        self,
        tablestore_client: Any = None,
        *,
        session_table_name: str = "agentmem_session",
        message_table_name: str = "agentmem_message",
        store_factory: Callable[..., Any] | None = None,
        **credentials: Unpack[TablestoreCredentials],
    ) -> None:
        self._session_table_name = check_id(session_table_name, "session_table_name")
        self._message_table_name = check_id(message_table_name, "message_table_name")
        self._tablestore = TablestoreConnection(self, tablestore_client, credentials, store_factory)
        self._clock = MicrosecondClock()

    @override
    async def start(self) -> None:
        """Create the tables if missing; idempotent.

        Raises :class:`BackendError` when Tablestore cannot be reached.
        """
        with self._mapped("create the session tables"):
            await self._tablestore.open(
                _memory_store,
                session_table_name=self._session_table_name,
                session_secondary_index_name=f"{self._session_table_name}_secondary_index",
                message_table_name=self._message_table_name,
                message_secondary_index_name=f"{self._message_table_name}_secondary_index",
            )

    @override
    async def stop(self) -> None:
        """Forget the store; close the client if the service built it."""
        await self._tablestore.close()

    @override
    async def _check_health(self) -> bool:
        await self._tablestore.store.get_session(id_key("health"), id_key("health"))
        return True

    async def _session_row(self, user_id: str, session_id: str) -> Any:
        """The stored row of the session, or None."""
        return await self._tablestore.store.get_session(id_key(user_id), id_key(session_id))

    async def _write_session(self, user_id: str, session_id: str, created_at: int) -> None:
        from tablestore_for_agent_memory.base.base_memory_store import Session as StoreSession

        row = StoreSession(
            user_id=id_key(user_id),
            session_id=id_key(session_id),
            update_time=self._clock.take(),
            metadata={_USER_ID: user_id, _SESSION_ID: session_id, _CREATED_AT: created_at},
        )
        await self._tablestore.store.put_session(row)

    @override
    async def _create_session(self, user_id: str, session_id: str) -> None:
        existing = await self._session_row(user_id, session_id)
        # A re-created session keeps its place in the creation order.
        created_at = self._clock.take() if existing is None else _created_at(existing)
        await self._tablestore.store.delete_messages(id_key(user_id, session_id))
        await self._write_session(user_id, session_id, created_at)

    @override
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        from tablestore_for_agent_memory.base.common import Order

        if await self._session_row(user_id, session_id) is None:
            return []
        rows = await self._tablestore.store.list_messages(
            session_id=id_key(user_id, session_id), order=Order.ASC
        )
        return [
            decode_message(row.content, f"Tablestore message {row.message_id!r}")
            async for row in rows
        ]

    @override
    async def _delete_session(self, user_id: str, session_id: str) -> None:
        store = self._tablestore.store
        await store.delete_session(id_key(user_id), id_key(session_id))
        await store.delete_messages(id_key(user_id, session_id))

    @override
    async def _list_session_ids(self, user_id: str) -> list[str]:
        rows = await self._tablestore.store.list_sessions(user_id=id_key(user_id))
        found = []
        async for row in rows:
            where = f"Tablestore session row {row.session_id!r}"
            session_id = stored_text((row.metadata or {}).get(_SESSION_ID), where)
            found.append((_created_at(row), session_id))
        return [session_id for _, session_id in sorted(found)]

    @override
    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        from tablestore_for_agent_memory.base.base_memory_store import Message as StoreMessage

        store = self._tablestore.store
        if await self._session_row(user_id, session_id) is None:
            await self._write_session(user_id, session_id, self._clock.take())
        key = id_key(user_id, session_id)
        first = self._clock.take(len(messages))
        rows = [
            StoreMessage(
                session_id=key,
                message_id=uuid.uuid4().hex,
                create_time=first + offset,
                content=message.model_dump_json(),
            )
            for offset, message in enumerate(messages)
        ]
        await write_all(
            rows,
            store.put_message,
            lambda row: store.delete_message(key, row.message_id, row.create_time),
        )
