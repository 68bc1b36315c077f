"""Sessions in Alibaba Cloud Tablestore, through ``tablestore-for-agent-memory``.

A session table keyed by (user, session) and a message table keyed by (session, time,
message), both read by primary key: what was written is read back at once, without the
delay of a search index.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import override

from agentmem._validation import check_id
from agentmem.errors import CorruptDataError, ServiceNotStartedError
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.schemas.session import Session
from agentmem.services.session_history.session_history_service import (
    SessionHistoryService,
    check_session,
    resolve_new_session_id,
)
from agentmem.services.utils import MicrosecondClock, id_key
from agentmem.services.utils.tablestore_service_utils import (
    TablestoreClientHolder,
    tablestore_errors,
)

__all__ = ["TablestoreSessionHistoryService"]

# Columns of a session row: the caller's ids (the keys are hashes of them) and the time
# of creation, which orders list_sessions.
_USER_ID = "user_id_text"
_SESSION_ID = "session_id_text"
_CREATED_AT = "created_at"


class TablestoreSessionHistoryService(SessionHistoryService):
    """Sessions and messages in two Tablestore tables; needs ``agentmem[tablestore]``.

    Give either ``tablestore_client`` (an ``AsyncOTSClient``, borrowed: the service
    never closes it) or ``end_point``, ``instance_name``, ``access_key_id`` and
    ``access_key_secret`` (the service then builds, owns and closes its client).
    ``start()`` creates the tables and their secondary indexes if missing.

    Rows are keyed by SHA-256 hashes of the user and session ids, so ids of any length
    or characters are kept apart; each message is stored whole as JSON (one column holds
    up to 2 MB). Messages are ordered by the microsecond of their writing.

    ``store_factory`` replaces ``AsyncMemoryStore``: it is called with that class's
    keyword arguments (a subclass, or an in-memory stand-in for tests).

    Cost per call, in Tablestore requests: ``append_message`` one read of the session
    row, one write of it and one write per message; ``get_session`` one read plus one
    range read per 5000 messages; ``create_session`` and ``delete_session`` one write
    plus the deletion of the session's messages; ``list_sessions`` one range read per
    5000 sessions.
    """

    def __init__(
        self,
        tablestore_client: Any = None,
        *,
        end_point: str | None = None,
        instance_name: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        session_table_name: str = "agentmem_session",
        message_table_name: str = "agentmem_message",
        store_factory: Callable[..., Any] | None = None,
    ) -> None:
        check_id(session_table_name, "session_table_name")
        check_id(message_table_name, "message_table_name")
        self._holder = TablestoreClientHolder(
            type(self).__name__,
            tablestore_client,
            (end_point, instance_name, access_key_id, access_key_secret),
            store_factory,
        )
        self._session_table_name = session_table_name
        self._message_table_name = message_table_name
        self._store_factory = store_factory
        self._store: Any = None
        self._clock = MicrosecondClock()

    def _new_store(self, client: Any) -> Any:
        if self._store_factory is None:
            from tablestore_for_agent_memory.memory.async_memory_store import (
                AsyncMemoryStore as factory,
            )
        else:
            factory = self._store_factory
        return factory(
            tablestore_client=client,
            session_table_name=self._session_table_name,
            session_secondary_index_name=f"{self._session_table_name}_secondary_index",
            message_table_name=self._message_table_name,
            message_secondary_index_name=f"{self._message_table_name}_secondary_index",
        )

    @override
    async def start(self) -> None:
        """Create the tables if missing; idempotent.

        Raises :class:`BackendError` when Tablestore cannot be reached.
        """
        if self._store is not None:
            return
        self._store = await self._holder.open_store(self._new_store, "creating the session tables")

    @override
    async def stop(self) -> None:
        """Forget the store; close the client if the service built it."""
        self._store = None
        await self._holder.release()

    @override
    async def health(self) -> bool:
        """Whether one read of the session table succeeds."""
        if self._store is None:
            return False
        try:
            await self._store.get_session(id_key("health"), id_key("health"))
        except Exception:
            return False
        return True

    def _require_store(self) -> Any:
        if self._store is None:
            raise ServiceNotStartedError(self)
        return self._store

    @staticmethod
    def _message_key(user_id: str, session_id: str) -> str:
        return id_key(user_id, session_id)

    async def _write_session(self, store: Any, user_id: str, session_id: str) -> None:
        from tablestore_for_agent_memory.base.base_memory_store import Session as StoreSession

        stamp = self._clock.take()
        row = StoreSession(
            user_id=id_key(user_id),
            session_id=id_key(session_id),
            update_time=stamp,
            metadata={_USER_ID: user_id, _SESSION_ID: session_id, _CREATED_AT: stamp},
        )
        await store.put_session(row)

    @override
    async def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        check_id(user_id, "user_id")
        new_id = resolve_new_session_id(session_id)
        store = self._require_store()
        with tablestore_errors("creating a session"):
            await store.delete_messages(self._message_key(user_id, new_id))
            await self._write_session(store, user_id, new_id)
        return Session(id=new_id, user_id=user_id)

    @override
    async def get_session(self, user_id: str, session_id: str) -> Session:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        store = self._require_store()
        from tablestore_for_agent_memory.base.common import Order

        with tablestore_errors("reading a session"):
            row = await store.get_session(id_key(user_id), id_key(session_id))
            if row is None:
                return Session(id=session_id, user_id=user_id)
            rows = await store.list_messages(
                session_id=self._message_key(user_id, session_id), order=Order.ASC
            )
            messages = [self._decode(message) async for message in rows]
        return Session(id=session_id, user_id=user_id, messages=messages)

    @staticmethod
    def _decode(row: Any) -> Message:
        raw = row.content
        if isinstance(raw, bytes | bytearray):
            raw = bytes(raw).decode("utf-8")
        try:
            return Message.model_validate_json(raw)
        except ValueError as exc:
            raise CorruptDataError(
                f"Tablestore message {row.message_id!r} is not an agentmem message: {exc}"
            ) from exc

    @override
    async def delete_session(self, user_id: str, session_id: str) -> None:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        store = self._require_store()
        with tablestore_errors("deleting a session"):
            await store.delete_session(id_key(user_id), id_key(session_id))
            await store.delete_messages(self._message_key(user_id, session_id))

    @override
    async def list_sessions(self, user_id: str) -> list[Session]:
        check_id(user_id, "user_id")
        store = self._require_store()
        with tablestore_errors("listing sessions"):
            rows = [row async for row in await store.list_sessions(user_id=id_key(user_id))]
        found = []
        for row in rows:
            metadata = row.metadata or {}
            session_id = metadata.get(_SESSION_ID)
            if isinstance(session_id, bytes | bytearray):
                session_id = bytes(session_id).decode("utf-8")
            if not isinstance(session_id, str):
                raise CorruptDataError(f"Tablestore session row {row.session_id!r} has no id")
            found.append((int(metadata.get(_CREATED_AT, 0)), session_id))
        return [Session(id=session_id, user_id=user_id) for _, session_id in sorted(found)]

    @override
    async def append_message(
        self,
        session: Session,
        message: Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]],
    ) -> None:
        check_session(session)
        messages = to_messages(message)
        store = self._require_store()
        from tablestore_for_agent_memory.base.base_memory_store import Message as StoreMessage

        key = self._message_key(session.user_id, session.id)
        with tablestore_errors("appending messages"):
            existing = await store.get_session(id_key(session.user_id), id_key(session.id))
            if existing is None:
                await self._write_session(store, session.user_id, session.id)
            first = self._clock.take(len(messages))
            for offset, item in enumerate(messages):
                await store.put_message(
                    StoreMessage(
                        session_id=key,
                        message_id=uuid.uuid4().hex,
                        create_time=first + offset,
                        content=item.model_dump_json(),
                    )
                )
        session.messages.extend(messages)
