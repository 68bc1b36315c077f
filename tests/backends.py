"""The backends that every backend-parametrized test runs against.

Each table maps a backend name to an async factory taking the pytest request and
returning a fresh, *unstarted* service whose data no other test can see.
``tests/conformance/test_conformance.py`` hands each table to
:func:`agentmem.testing.conformance_suite`, and the fixtures of ``conftest.py`` serve
the same tables to the contract, round-trip and adapter tests; both start the service,
hand it to the test, then stop it. Adding a backend to all of them is adding one entry
here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from agentmem import (
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryService,
    SessionHistoryService,
    StateService,
)

MemoryFactory = Callable[[pytest.FixtureRequest], Awaitable[MemoryService]]
SessionHistoryFactory = Callable[[pytest.FixtureRequest], Awaitable[SessionHistoryService]]
StateFactory = Callable[[pytest.FixtureRequest], Awaitable[StateService]]


async def _in_memory_memory(request: pytest.FixtureRequest) -> MemoryService:
    return InMemoryMemoryService()


async def _in_memory_sessions(request: pytest.FixtureRequest) -> SessionHistoryService:
    return InMemorySessionHistoryService()


async def _in_memory_state(request: pytest.FixtureRequest) -> StateService:
    return InMemoryStateService()


MEMORY_BACKENDS: dict[str, MemoryFactory] = {"in_memory": _in_memory_memory}
SESSION_HISTORY_BACKENDS: dict[str, SessionHistoryFactory] = {"in_memory": _in_memory_sessions}
STATE_BACKENDS: dict[str, StateFactory] = {"in_memory": _in_memory_state}
# These modules add their backends to the tables above, so they are imported after them.
from tests import hosted_backends, redis_backends, sqlite_backends  # noqa: E402, F401
