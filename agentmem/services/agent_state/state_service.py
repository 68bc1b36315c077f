"""Agent state per user, session and round: the abstract service and the in-memory backend."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from typing_extensions import override

from agentmem._validation import DEFAULT_SESSION_ID, check_id, check_optional_id, copy_state
from agentmem.services.base import ServiceWithLifecycleManager

__all__ = ["InMemoryStateService", "StateService", "check_round_id"]


def check_round_id(round_id: object, *, optional: bool = True) -> int | None:
    """Return ``round_id`` if it is a positive int (or None when optional)."""
    if round_id is None and optional:
        return None
    if not isinstance(round_id, int) or isinstance(round_id, bool):
        raise TypeError(f"round_id must be an int, got {type(round_id).__name__}")
    if round_id < 1:
        raise ValueError(f"round_id must be >= 1, got {round_id}")
    return round_id


class StateService(ServiceWithLifecycleManager):
    """Serialized agent state, one version per round, per user and session.

    States must be JSON-serializable dicts; they are stored as copies, so changing a dict
    after saving it, or one returned by :meth:`export_state`, changes nothing stored.
    Without a ``session_id`` the session ``"default"`` is used.
    """

    @abstractmethod
    async def save_state(
        self,
        user_id: str,
        state: Mapping[str, Any],
        session_id: str | None = None,
        round_id: int | None = None,
    ) -> int:
        """Store ``state`` and return its round id.

        Without ``round_id`` the next round is taken (1, 2, 3...): concurrent saves get
        distinct rounds. With one, that round is written or overwritten.
        """

    @abstractmethod
    async def export_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> dict[str, Any] | None:
        """The state of ``round_id``, or of the latest round; None if there is none."""

    @abstractmethod
    async def list_states(self, user_id: str, session_id: str | None = None) -> list[int]:
        """The round ids stored for the session, ascending."""

    @abstractmethod
    async def delete_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> None:
        """Delete one round, or every round of the session; missing ones are no error."""


class InMemoryStateService(StateService):
    """States in a dict ``{(user_id, session_id): {round_id: state}}``; works unstarted."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}

    @override
    async def start(self) -> None:
        """Nothing to acquire; kept for the common lifecycle."""

    @override
    async def stop(self) -> None:
        """Keeps the states: a stopped in-memory service can be started again."""

    @override
    async def health(self) -> bool:
        return True

    @staticmethod
    def _key(user_id: str, session_id: str | None) -> tuple[str, str]:
        check_id(user_id, "user_id")
        return user_id, check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID

    @override
    async def save_state(
        self,
        user_id: str,
        state: Mapping[str, Any],
        session_id: str | None = None,
        round_id: int | None = None,
    ) -> int:
        key = self._key(user_id, session_id)
        explicit = check_round_id(round_id)
        copied = copy_state(state)
        rounds = self._states.setdefault(key, {})
        chosen = explicit if explicit is not None else max(rounds, default=0) + 1
        rounds[chosen] = copied
        return chosen

    @override
    async def export_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> dict[str, Any] | None:
        key = self._key(user_id, session_id)
        wanted = check_round_id(round_id)
        rounds = self._states.get(key)
        if not rounds:
            return None
        chosen = wanted if wanted is not None else max(rounds)
        state = rounds.get(chosen)
        return None if state is None else copy_state(state)

    @override
    async def list_states(self, user_id: str, session_id: str | None = None) -> list[int]:
        return sorted(self._states.get(self._key(user_id, session_id), ()))

    @override
    async def delete_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> None:
        key = self._key(user_id, session_id)
        wanted = check_round_id(round_id)
        if wanted is None:
            self._states.pop(key, None)
            return
        rounds = self._states.get(key)
        if rounds is not None:
            rounds.pop(wanted, None)
            if not rounds:
                del self._states[key]
