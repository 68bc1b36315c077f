"""Behaviour every :class:`~agentmem.StateService` backend must show.

The tests take the fixture ``state_service``: a started service holding no state, which
:func:`agentmem.testing.conformance_suite` provides.
"""

from __future__ import annotations

import asyncio

import pytest

from agentmem.errors import InvalidArgumentError, UnsupportedOperationError
from agentmem.limits import MAX_ID_LENGTH
from agentmem.services.agent_state.state_service import StateService
from agentmem.services.base import Capability
from agentmem.testing.conformance._support import lacking, require

__all__ = ["StateConformance"]

HOSTILE_IDS = ["*", "?", "alice:x", "{alice}", "ünï©ødé 🧠", "x" * MAX_ID_LENGTH]


@pytest.mark.asyncio
class StateConformance:
    """The state service tests; :func:`agentmem.testing.conformance_suite` runs them."""

    async def test_rounds_count_up_from_one(self, state_service: StateService) -> None:
        assert await state_service.save_state("u1", {"step": 1}) == 1
        assert await state_service.save_state("u1", {"step": 2}) == 2
        assert await state_service.save_state("u1", {"step": 3}, session_id="s") == 1

    async def test_export_latest_and_by_round(self, state_service: StateService) -> None:
        await state_service.save_state("u1", {"step": 1}, session_id="s")
        await state_service.save_state("u1", {"step": 2}, session_id="s")
        assert await state_service.export_state("u1", session_id="s") == {"step": 2}
        assert await state_service.export_state("u1", session_id="s", round_id=1) == {"step": 1}
        assert await state_service.export_state("u1", session_id="s", round_id=9) is None
        assert await state_service.export_state("u1", session_id="other") is None

    async def test_explicit_round_overwrites(self, state_service: StateService) -> None:
        assert await state_service.save_state("u1", {"v": "a"}, round_id=5) == 5
        assert await state_service.save_state("u1", {"v": "b"}, round_id=5) == 5
        assert await state_service.export_state("u1", round_id=5) == {"v": "b"}
        assert await state_service.save_state("u1", {"v": "c"}) == 6

    async def test_list_and_delete(self, state_service: StateService) -> None:
        for step in range(3):
            await state_service.save_state("u1", {"step": step}, session_id="s")
        assert await state_service.list_states("u1", session_id="s") == [1, 2, 3]
        await state_service.delete_state("u1", session_id="s", round_id=2)
        assert await state_service.list_states("u1", session_id="s") == [1, 3]
        assert await state_service.export_state("u1", session_id="s") == {"step": 2}
        await state_service.delete_state("u1", session_id="s")
        assert await state_service.list_states("u1", session_id="s") == []
        await state_service.delete_state("u1", session_id="missing", round_id=1)

    async def test_state_session_ids_are_sorted_and_per_user(
        self, state_service: StateService
    ) -> None:
        require(state_service, Capability.LIST_SESSIONS)
        await state_service.save_state("u1", {"n": 1}, session_id="b")
        await state_service.save_state("u1", {"n": 2}, session_id="a")
        await state_service.save_state("u1", {"n": 3})
        await state_service.save_state("u1", {"n": 4}, session_id="b")
        await state_service.save_state("u2", {"n": 5}, session_id="z")
        assert await state_service.list_session_ids("u1") == ["a", "b", "default"]
        assert await state_service.list_session_ids("nobody") == []

    async def test_state_session_ids_forget_sessions_without_rounds(
        self, state_service: StateService
    ) -> None:
        require(state_service, Capability.LIST_SESSIONS)
        await state_service.save_state("u1", {"n": 1}, session_id="a")
        await state_service.save_state("u1", {"n": 2}, session_id="b")
        await state_service.save_state("u1", {"n": 3}, session_id="c")
        await state_service.delete_state("u1", session_id="a")
        await state_service.delete_state("u1", session_id="b", round_id=1)
        assert await state_service.list_session_ids("u1") == ["c"]

    async def test_without_list_sessions_state_session_ids_are_refused(
        self, state_service: StateService
    ) -> None:
        lacking(state_service, Capability.LIST_SESSIONS)
        with pytest.raises(UnsupportedOperationError):
            await state_service.list_session_ids("u1")

    async def test_saved_state_is_a_copy(self, state_service: StateService) -> None:
        state: dict[str, object] = {"items": [1, 2], "nested": {"k": "v"}}
        await state_service.save_state("u1", state)
        state["items"].append(3)  # type: ignore[attr-defined]
        exported = await state_service.export_state("u1")
        assert exported == {"items": [1, 2], "nested": {"k": "v"}}
        exported["nested"]["k"] = "changed"
        assert await state_service.export_state("u1") == {"items": [1, 2], "nested": {"k": "v"}}

    @pytest.mark.parametrize(
        "bad_state", [["list"], "text", None, {"f": object()}, {"n": float("nan")}]
    )
    async def test_bad_state_is_rejected_and_nothing_stored(
        self, state_service: StateService, bad_state: object
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await state_service.save_state("u1", bad_state)  # type: ignore[arg-type]
        assert raised.value.field.startswith("state")
        assert await state_service.list_states("u1") == []

    @pytest.mark.parametrize("bad_round", [0, -1, "1", 1.5, True])
    async def test_bad_round_id_is_rejected(
        self, state_service: StateService, bad_round: object
    ) -> None:
        with pytest.raises(InvalidArgumentError) as raised:
            await state_service.save_state("u1", {}, round_id=bad_round)  # type: ignore[arg-type]
        assert raised.value.field == "round_id"
        assert await state_service.list_states("u1") == []

    async def test_concurrent_saves_get_distinct_rounds(self, state_service: StateService) -> None:
        rounds = await asyncio.gather(
            *(state_service.save_state("u1", {"i": i}, session_id="s") for i in range(200))
        )
        assert sorted(rounds) == list(range(1, 201))
        assert await state_service.list_states("u1", session_id="s") == list(range(1, 201))

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    async def test_hostile_ids_never_see_other_users_state(
        self, state_service: StateService, hostile: str
    ) -> None:
        await state_service.save_state("alice", {"secret": 1}, session_id="s")
        assert await state_service.export_state(hostile, session_id="s") is None
        await state_service.save_state(hostile, {"mine": 1}, session_id=hostile)
        await state_service.delete_state(hostile, session_id="s")
        assert await state_service.export_state("alice", session_id="s") == {"secret": 1}

    async def test_state_health_when_started(self, state_service: StateService) -> None:
        assert await state_service.health() is True
