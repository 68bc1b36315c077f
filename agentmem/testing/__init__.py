"""Helpers for testing and trying agentmem: its conformance suite and throwaway servers.

**Running the conformance suite on your backend.** One line in a pytest test module::

    from agentmem.testing import conformance_suite

    TestMyMemory = conformance_suite(memory=lambda: MyMemoryService(url="..."))

pytest then runs every test a :class:`~agentmem.MemoryService` must pass on
``MyMemoryService``. ``session_history=`` and ``state=`` do the same for a
:class:`~agentmem.SessionHistoryService` and a :class:`~agentmem.StateService`; one
call may take several of them.

Each argument is a *factory*: it returns a fresh, unstarted service whose data no other
test can see (its own database, key prefix or namespace), or an awaitable of one. The
suite calls it once per test, starts the service (``async with``), runs the test and
stops it. A factory with a required positional parameter is called with pytest's
``request``, so it can reach fixtures (``request.getfixturevalue("tmp_path")``) and
register cleanup (``request.addfinalizer``). Give a dict of factories by name to run the
suite once per entry, with the name in each test's id::

    TestMyMemory = conformance_suite(memory={"local": make_local, "server": make_server})

Tests of optional operations skip when the service's ``capabilities`` lacks the
:class:`~agentmem.services.base.Capability` they need, and the tests that check the
refusal (:class:`~agentmem.errors.UnsupportedOperationError`) skip when it has it.
The suite needs pytest and pytest-asyncio (``pip install 'agentmem-services[test]'``);
it works with pytest-asyncio in strict or auto mode. Importing :mod:`agentmem.testing` itself
imports neither: ``conformance_suite`` loads them on first use.

**Throwaway Redis servers**: :mod:`agentmem.testing.redis_server`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentmem._lazy import lazy_attribute

if TYPE_CHECKING:
    from agentmem.testing.conformance import conformance_suite

__all__ = ["conformance_suite"]

_LAZY = {"conformance_suite": "agentmem.testing.conformance"}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
