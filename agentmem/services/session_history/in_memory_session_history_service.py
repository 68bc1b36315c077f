"""Sessions in process memory."""

from __future__ import annotations

from typing_extensions import override

from agentmem.schemas.agent_schemas import Message
from agentmem.services.base import Capability, InProcessLifecycle
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = ["InMemorySessionHistoryService"]


class InMemorySessionHistoryService(InProcessLifecycle, SessionHistoryService):
    """Sessions in a dict ``{user_id: {session_id: {message id: message JSON}}}``.

    Works unstarted. Messages are kept as JSON, so every read returns fresh copies, as
    from a server; keyed by id, so a session holds each message once.
    """

    capabilities = frozenset({Capability.IDEMPOTENT_WRITES})

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, dict[str, bytes]]] = {}

    @override
    async def _create_session(self, user_id: str, session_id: str) -> None:
        # A re-created session keeps its place in the creation order.
        self._sessions.setdefault(user_id, {})[session_id] = {}

    @override
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        stored = self._sessions.get(user_id, {}).get(session_id, {})
        return [Message.model_validate_json(raw) for raw in stored.values()]

    @override
    async def _delete_session(self, user_id: str, session_id: str) -> None:
        sessions = self._sessions.get(user_id)
        if sessions is not None:
            sessions.pop(session_id, None)
            if not sessions:
                del self._sessions[user_id]

    @override
    async def _list_session_ids(self, user_id: str) -> list[str]:
        return list(self._sessions.get(user_id, ()))

    @override
    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        stored = self._sessions.setdefault(user_id, {}).setdefault(session_id, {})
        for message in messages:
            if message.id not in stored:
                stored[message.id] = message.__pydantic_serializer__.to_json(message)
