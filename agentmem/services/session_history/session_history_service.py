"""The abstract session history service: conversations and their messages."""

from __future__ import annotations

import uuid
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from agentmem._validation import check_id
from agentmem.schemas.agent_schemas import Message
from agentmem.schemas.session import Session
from agentmem.services.base import ServiceWithLifecycleManager

__all__ = ["SessionHistoryService", "resolve_new_session_id"]


def resolve_new_session_id(session_id: object) -> str:
    """The id of a session to create: the given one, or a new uuid if it is None or blank."""
    if session_id is None:
        return str(uuid.uuid4())
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a str or None, got {type(session_id).__name__}")
    return session_id if session_id.strip() else str(uuid.uuid4())


def check_session(session: object) -> Session:
    """Return ``session`` if it is a :class:`Session` with usable ids."""
    if not isinstance(session, Session):
        raise TypeError(f"session must be a Session, got {type(session).__name__}")
    check_id(session.user_id, "session.user_id")
    check_id(session.id, "session.id")
    return session


class SessionHistoryService(ServiceWithLifecycleManager):
    """Conversation sessions of users, each an ordered list of messages.

    The rule for sessions that do not exist, the same in every backend:
    :meth:`get_session` returns an empty :class:`Session` with the requested id (it
    never returns ``None``) but does not store it; :meth:`create_session` or the first
    :meth:`append_message` stores it. So a read never writes, and a deleted session
    reads as empty.
    """

    @abstractmethod
    async def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        """Create (or reset to empty) a session; a None or blank id gets a new uuid."""

    @abstractmethod
    async def get_session(self, user_id: str, session_id: str) -> Session:
        """The session with all its messages, or an empty one if it does not exist."""

    @abstractmethod
    async def delete_session(self, user_id: str, session_id: str) -> None:
        """Delete a session and its messages; a missing session is not an error."""

    @abstractmethod
    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's sessions, in creation order, without their messages."""

    @abstractmethod
    async def append_message(
        self,
        session: Session,
        message: Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]],
    ) -> None:
        """Append one message or a list of them, in order, to the stored session.

        The messages are also appended to ``session.messages``, so the caller's object
        stays in step. A session that is not stored yet is stored with them.
        """
