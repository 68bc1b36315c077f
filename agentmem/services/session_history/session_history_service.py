"""The abstract session history service: conversations and their messages.

:class:`SessionHistoryService` holds the contract (validation, limits, copies, error
mapping); a backend implements the ``_``-prefixed storage core only.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from agentmem._validation import check_id, check_messages, new_session_id
from agentmem.errors import InvalidArgumentError
from agentmem.schemas.agent_schemas import Message
from agentmem.schemas.display import Column, DisplayList, Table
from agentmem.schemas.session import Session
from agentmem.services.base import ServiceWithLifecycleManager

__all__ = ["SessionHistoryService", "SessionList", "check_session"]


class SessionList(DisplayList[Session]):
    """Sessions returned by :meth:`SessionHistoryService.list_sessions`: a list, shown
    as a table in Jupyter."""

    def table(self) -> Table:
        """Position, id and user of each session (listed without their messages)."""
        return Table(
            [Column("#", "number"), Column("session", "code"), Column("user", "code")],
            [
                [str(position), session.id, session.user_id]
                for position, session in enumerate(self, start=1)
            ],
            empty="No sessions.",
        )


def check_session(session: object) -> Session:
    """Return ``session`` if it is a :class:`Session` with usable ids."""
    if not isinstance(session, Session):
        raise InvalidArgumentError("session", f"must be a Session, got {type(session).__name__}")
    check_id(session.user_id, "session.user_id")
    check_id(session.id, "session.id")
    return session


class SessionHistoryService(ServiceWithLifecycleManager):
    """Conversation sessions of users, each an ordered list of messages.

    The rule for sessions that do not exist, the same in every backend:
    :meth:`get_session` returns an empty :class:`Session` with the requested id (it
    never returns ``None``) but does not store it; :meth:`create_session` or the first
    :meth:`append_message` stores it. So a read never writes, and a deleted session
    reads as empty. Bad arguments raise :class:`agentmem.errors.InvalidArgumentError`
    and store nothing; messages are stored as copies.

    A backend implements :meth:`_create_session`, :meth:`_read_messages`,
    :meth:`_delete_session`, :meth:`_list_session_ids` and :meth:`_append_messages`.
    """

    async def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        """Create (or reset to empty) a session; a None or blank id gets a new uuid.

        Whitespace around a given id is removed: ``" chat "`` creates ``"chat"``. The
        returned session holds the id used.
        """
        check_id(user_id, "user_id")
        given = session_id.strip() if isinstance(session_id, str) else session_id
        session = Session(id=new_session_id(given), user_id=user_id)
        with self._mapped("create session"):
            await self._create_session(user_id, session.id)
        return session

    async def get_session(self, user_id: str, session_id: str) -> Session:
        """The session with all its messages, or an empty one if it does not exist."""
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        with self._mapped("read session"):
            messages = await self._read_messages(user_id, session_id)
        return Session(id=session_id, user_id=user_id, messages=messages)

    async def delete_session(self, user_id: str, session_id: str) -> None:
        """Delete a session and its messages; a missing session is not an error."""
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        with self._mapped("delete session"):
            await self._delete_session(user_id, session_id)

    async def list_sessions(self, user_id: str) -> SessionList:
        """The user's sessions, in creation order, without their messages."""
        check_id(user_id, "user_id")
        with self._mapped("list sessions"):
            ids = await self._list_session_ids(user_id)
        return SessionList(Session(id=session_id, user_id=user_id) for session_id in ids)

    async def delete_user_sessions(self, user_id: str) -> None:
        """Delete every session of the user (AgentScope Runtime 1.0's name)."""
        for session in await self.list_sessions(user_id):
            await self.delete_session(user_id, session.id)

    async def append_message(
        self,
        session: Session,
        message: Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]],
    ) -> None:
        """Append one message or a list of them, in order, to the stored session.

        The messages are also appended to ``session.messages``, so the caller's object
        stays in step. A session that is not stored yet is stored with them. With
        :attr:`~agentmem.Capability.IDEMPOTENT_WRITES`, a message whose id the session
        already holds is not stored again, so a call that raised may be retried.
        """
        check_session(session)
        # Not copied: backends store what the messages hold, and the caller's session
        # gets the very objects it appended, as in AgentScope Runtime.
        messages = check_messages(message, "message", copy=False)
        if not messages:
            return
        with self._mapped("append messages"):
            await self._append_messages(session.user_id, session.id, messages)
        session.messages.extend(messages)

    @abstractmethod
    async def _check_health(self) -> bool:
        """One round trip to the storage, as :meth:`health` describes."""

    # The storage core; arguments arrive validated.

    @abstractmethod
    async def _create_session(self, user_id: str, session_id: str) -> None:
        """Store the session empty (emptying it if it exists)."""

    @abstractmethod
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        """Fresh copies of the session's messages in order ([] when it does not exist)."""

    @abstractmethod
    async def _delete_session(self, user_id: str, session_id: str) -> None:
        """Delete the session and its messages, if it exists."""

    @abstractmethod
    async def _list_session_ids(self, user_id: str) -> list[str]:
        """The user's session ids in creation order."""

    @abstractmethod
    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        """Append ``messages`` (at least one) atomically, storing the session if new.

        The message objects are the caller's (they join ``session.messages``): a
        backend stores what they hold, never the objects themselves.
        """


def __getattr__(name: str) -> Any:
    # AgentScope Runtime 1.0 defined the in-memory backend in this module.
    if name == "InMemorySessionHistoryService":
        from agentmem.services.session_history.in_memory_session_history_service import (
            InMemorySessionHistoryService,
        )

        return InMemorySessionHistoryService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
