"""The conformance suite of agentmem's services, runnable on any backend.

Use it through :func:`agentmem.testing.conformance_suite`, described in
:mod:`agentmem.testing`. Needs pytest and pytest-asyncio (agentmem's ``test`` extra).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import pytest

# Registered before the suites are imported, so their failing asserts show the values
# compared, as in the caller's own test modules.
pytest.register_assert_rewrite(
    "agentmem.testing.conformance.memory",
    "agentmem.testing.conformance.session_history",
    "agentmem.testing.conformance.state",
)

import pytest_asyncio  # noqa: E402

from agentmem.services.agent_state.state_service import StateService  # noqa: E402
from agentmem.services.base import ServiceWithLifecycleManager  # noqa: E402
from agentmem.services.memory.memory_service import MemoryService  # noqa: E402
from agentmem.services.session_history.session_history_service import (  # noqa: E402
    SessionHistoryService,
)
from agentmem.testing.conformance.memory import MemoryConformance  # noqa: E402
from agentmem.testing.conformance.session_history import (  # noqa: E402
    SessionHistoryConformance,
)
from agentmem.testing.conformance.state import StateConformance  # noqa: E402

__all__ = [
    "Backends",
    "MemoryConformance",
    "ServiceFactory",
    "SessionHistoryConformance",
    "StateConformance",
    "conformance_suite",
]

ServiceT = TypeVar("ServiceT", bound=ServiceWithLifecycleManager)

#: Makes a fresh, unstarted service; called with no argument, or with pytest's
#: ``request`` when it has a required positional parameter; may be async.
ServiceFactory: TypeAlias = Callable[..., ServiceT | Awaitable[ServiceT]]
#: One factory, or factories by name to run the suite once per entry.
Backends: TypeAlias = ServiceFactory[ServiceT] | Mapping[str, ServiceFactory[ServiceT]]


def _takes_request(factory: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: a builtin, called bare
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is p.empty for p in parameters)


def _service_fixture(name: str, backends: Backends[Any]) -> Any:
    """A fixture ``name`` yielding a started service from ``backends``, stopped after."""
    single: ServiceFactory[Any] | None = None
    table: dict[str, ServiceFactory[Any]] = {}
    if isinstance(backends, Mapping):
        table = dict(backends)
    else:
        single = backends

    async def service(self: object, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        factory = single if single is not None else table[request.param]
        made = factory(request) if _takes_request(factory) else factory()
        if inspect.isawaitable(made):
            made = await made
        async with made:
            yield made

    return pytest_asyncio.fixture(
        service, name=name, params=None if single is not None else sorted(table)
    )


def conformance_suite(
    *,
    memory: Backends[MemoryService] | None = None,
    session_history: Backends[SessionHistoryService] | None = None,
    state: Backends[StateService] | None = None,
) -> type:
    """A pytest test class running the conformance tests of the services given.

    Assign it to a ``Test...`` name in a test module; see :mod:`agentmem.testing`.
    """
    suites: list[tuple[str, Backends[Any] | None, type]] = [
        ("memory_service", memory, MemoryConformance),
        ("session_service", session_history, SessionHistoryConformance),
        ("state_service", state, StateConformance),
    ]
    bases = tuple(suite for _, backends, suite in suites if backends is not None)
    if not bases:
        raise TypeError("conformance_suite() needs memory=, session_history= or state=")
    fixtures = {
        name: _service_fixture(name, backends)
        for name, backends, _ in suites
        if backends is not None
    }
    return type("ConformanceSuite", bases, fixtures)
