"""Agent state per user, session and round: the abstract service and the in-memory backend.

:class:`StateService` holds the contract (validation, limits, copies, error mapping); a
backend implements the ``_``-prefixed storage core only.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from typing_extensions import override

from agentmem._validation import check_id, check_round_id, check_state, session_or_default
from agentmem.errors import CorruptDataError, InvalidArgumentError
from agentmem.limits import MAX_ROUND_ID
from agentmem.schemas.display import Column, DisplayList, Table
from agentmem.services.base import Capability, InProcessLifecycle, ServiceWithLifecycleManager

__all__ = ["InMemoryStateService", "StateRounds", "StateService", "check_round_id", "next_round"]


class StateRounds(DisplayList[int]):
    """The round ids of one session returned by :meth:`StateService.list_states`,
    ascending: a list of ints, shown as a table in Jupyter under the session's name."""

    def __init__(self, rounds: Iterable[int] = (), *, user_id: str, session_id: str) -> None:
        super().__init__(rounds)
        self.user_id = user_id
        self.session_id = session_id

    def table(self) -> Table:
        """The round ids, under a line naming the user and session."""
        return Table(
            [Column("round", "number")],
            [[str(round_id)] for round_id in self],
            empty="No rounds.",
            caption=f"State rounds of session {self.session_id} of user {self.user_id}",
        )


def next_round(latest: int | None) -> int:
    """The round after ``latest`` (1 for none); raises when the rounds are exhausted."""
    chosen = (latest or 0) + 1
    if chosen > MAX_ROUND_ID:
        raise InvalidArgumentError(
            "round_id",
            f"the session's latest round is {MAX_ROUND_ID}, the largest round id, so it has "
            "no next round: pass a round_id",
        )
    return chosen


def decode_state(raw: str | bytes, stored: str) -> dict[str, Any]:
    """A stored state read back; CorruptDataError when it is not a JSON object.

    ``stored`` names the state in the error, e.g. ``"a state of session 's' of user
    'u'"``.
    """
    try:
        state = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise CorruptDataError(f"{stored} is not JSON") from exc
    if not isinstance(state, dict):
        raise CorruptDataError(f"{stored} is not a JSON object")
    return state


class StateService(ServiceWithLifecycleManager):
    """Serialized agent state, one version per round, per user and session.

    States are dicts of strict JSON (see :mod:`agentmem.limits`); they are stored as
    copies, so changing a dict after saving it, or one returned by :meth:`export_state`,
    changes nothing stored. Without a ``session_id`` the session ``"default"`` is used.
    Bad arguments raise :class:`agentmem.errors.InvalidArgumentError` and store nothing.

    A backend implements :meth:`_save_state`, :meth:`_load_state`, :meth:`_list_rounds`,
    :meth:`_delete_state` and :meth:`_list_state_sessions`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LIST_SESSIONS})

    async def save_state(
        self,
        user_id: str,
        state: Mapping[str, Any],
        session_id: str | None = None,
        round_id: int | None = None,
    ) -> int:
        """Store ``state`` and return its round id.

        Without ``round_id`` the next round after the latest is taken (1, 2, 3...):
        concurrent saves get distinct rounds. With one (1 to 2**53 - 1), that round is
        written or overwritten.
        """
        check_id(user_id, "user_id")
        session = session_or_default(session_id)
        explicit = check_round_id(round_id)
        copied = check_state(state)
        with self._mapped("save state"):
            return await self._save_state(user_id, session, copied, explicit)

    async def export_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> dict[str, Any] | None:
        """The state of ``round_id``, or of the latest round; None if there is none."""
        check_id(user_id, "user_id")
        session = session_or_default(session_id)
        wanted = check_round_id(round_id)
        with self._mapped("read state"):
            return await self._load_state(user_id, session, wanted)

    async def list_states(self, user_id: str, session_id: str | None = None) -> StateRounds:
        """The round ids stored for the session, ascending."""
        check_id(user_id, "user_id")
        session = session_or_default(session_id)
        with self._mapped("list states"):
            rounds = await self._list_rounds(user_id, session)
        return StateRounds(rounds, user_id=user_id, session_id=session)

    async def list_session_ids(self, user_id: str) -> list[str]:
        """The ids of the user's sessions that hold at least one round, sorted."""
        check_id(user_id, "user_id")
        self._require(Capability.LIST_SESSIONS, "list a user's sessions")
        with self._mapped("list sessions"):
            return sorted(await self._list_state_sessions(user_id))

    async def delete_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> None:
        """Delete one round, or every round of the session; missing ones are no error."""
        check_id(user_id, "user_id")
        session = session_or_default(session_id)
        wanted = check_round_id(round_id)
        with self._mapped("delete state"):
            await self._delete_state(user_id, session, wanted)

    @abstractmethod
    async def _check_health(self) -> bool:
        """One round trip to the storage, as :meth:`health` describes."""

    # The storage core; arguments arrive validated and ``state`` is the backend's own copy.

    @abstractmethod
    async def _save_state(
        self, user_id: str, session_id: str, state: dict[str, Any], round_id: int | None
    ) -> int:
        """Store ``state`` as ``round_id``, or as :func:`next_round` of the latest round
        when it is None, atomically; return the round."""

    @abstractmethod
    async def _load_state(
        self, user_id: str, session_id: str, round_id: int | None
    ) -> dict[str, Any] | None:
        """A fresh copy of the state of ``round_id`` (the latest for None), or None."""

    @abstractmethod
    async def _list_rounds(self, user_id: str, session_id: str) -> list[int]:
        """The session's round ids, ascending."""

    @abstractmethod
    async def _delete_state(self, user_id: str, session_id: str, round_id: int | None) -> None:
        """Delete ``round_id``, or every round of the session for None."""

    @abstractmethod
    async def _list_state_sessions(self, user_id: str) -> list[str]:
        """The user's session ids that hold at least one round, in any order."""


class InMemoryStateService(InProcessLifecycle, StateService):
    """States in a dict ``{user_id: {session_id: {round_id: JSON}}}``; works unstarted.

    States are kept as JSON text, so every read returns a fresh copy, as from a server.
    """

    def __init__(self) -> None:
        self._states: dict[str, dict[str, dict[int, str]]] = {}

    @override
    async def _save_state(
        self, user_id: str, session_id: str, state: dict[str, Any], round_id: int | None
    ) -> int:
        encoded = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        rounds = self._states.get(user_id, {}).get(session_id, {})
        chosen = round_id if round_id is not None else next_round(max(rounds, default=None))
        self._states.setdefault(user_id, {}).setdefault(session_id, {})[chosen] = encoded
        return chosen

    @override
    async def _load_state(
        self, user_id: str, session_id: str, round_id: int | None
    ) -> dict[str, Any] | None:
        rounds = self._states.get(user_id, {}).get(session_id)
        if not rounds:
            return None
        encoded = rounds.get(max(rounds) if round_id is None else round_id)
        return None if encoded is None else dict(json.loads(encoded))

    @override
    async def _list_rounds(self, user_id: str, session_id: str) -> list[int]:
        return sorted(self._states.get(user_id, {}).get(session_id, ()))

    @override
    async def _delete_state(self, user_id: str, session_id: str, round_id: int | None) -> None:
        sessions = self._states.get(user_id)
        if sessions is None or session_id not in sessions:
            return
        if round_id is None:
            del sessions[session_id]
        else:
            sessions[session_id].pop(round_id, None)
            if not sessions[session_id]:
                del sessions[session_id]
        if not sessions:
            del self._states[user_id]

    @override
    async def _list_state_sessions(self, user_id: str) -> list[str]:
        return list(self._states.get(user_id, ()))
