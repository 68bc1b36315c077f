"""Sessions in process memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from typing_extensions import override

from agentmem._validation import check_id
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.schemas.session import Session
from agentmem.services.session_history.session_history_service import (
    SessionHistoryService,
    check_session,
    resolve_new_session_id,
)

__all__ = ["InMemorySessionHistoryService"]


class InMemorySessionHistoryService(SessionHistoryService):
    """Sessions in a dict ``{user_id: {session_id: Session}}``; works without ``start()``.

    Returned sessions are copies: changing one does not change what is stored.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, Session]] = {}

    @override
    async def start(self) -> None:
        """Nothing to acquire; kept for the common lifecycle."""

    @override
    async def stop(self) -> None:
        """Keeps the sessions: a stopped in-memory service can be started again."""

    @override
    async def health(self) -> bool:
        return True

    @override
    async def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        check_id(user_id, "user_id")
        session = Session(id=resolve_new_session_id(session_id), user_id=user_id)
        self._sessions.setdefault(user_id, {})[session.id] = session
        return session.model_copy(deep=True)

    @override
    async def get_session(self, user_id: str, session_id: str) -> Session:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        stored = self._sessions.get(user_id, {}).get(session_id)
        if stored is None:
            return Session(id=session_id, user_id=user_id)
        return stored.model_copy(deep=True)

    @override
    async def delete_session(self, user_id: str, session_id: str) -> None:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        sessions = self._sessions.get(user_id)
        if sessions is not None:
            sessions.pop(session_id, None)
            if not sessions:
                del self._sessions[user_id]

    @override
    async def list_sessions(self, user_id: str) -> list[Session]:
        check_id(user_id, "user_id")
        return [
            Session(id=session.id, user_id=user_id)
            for session in self._sessions.get(user_id, {}).values()
        ]

    @override
    async def append_message(
        self,
        session: Session,
        message: Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]],
    ) -> None:
        check_session(session)
        messages = to_messages(message)
        stored = self._sessions.setdefault(session.user_id, {}).setdefault(
            session.id, Session(id=session.id, user_id=session.user_id)
        )
        stored.messages.extend(item.model_copy(deep=True) for item in messages)
        session.messages.extend(messages)
