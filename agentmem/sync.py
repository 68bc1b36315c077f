"""Synchronous access to agentmem's async services, for plain scripts and notebooks.

How it works: agentmem keeps one private event loop running in a daemon thread
(named ``agentmem-sync``). :func:`run` hands a coroutine to that loop and blocks the
calling thread until it is done. Because the loop has a thread of its own, the same
call works whether or not the caller's thread already runs an event loop: in a plain
script and inside a Jupyter cell (where the kernel's loop is running) alike, with no
patching of :mod:`asyncio`.

One rule follows: a service used through this module must be used only through it,
from ``start`` to ``stop``. Connections (Redis pools, for instance) belong to the loop
they were opened on, so a service started on the private loop cannot also be awaited on
another one. In-memory services hold no connection and are free of this rule.

Example::

    from agentmem import InMemoryMemoryService
    from agentmem.sync import SyncMemoryService

    with SyncMemoryService(InMemoryMemoryService()) as memory:
        memory.add_memory("alice", {"role": "user", "content": [{"type": "text", "text": "hi"}]})
        memory.list_memory("alice")
"""

from __future__ import annotations

import atexit
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from agentmem._loop_thread import LoopThread
from agentmem.services.agent_state.state_service import StateService
from agentmem.services.base import ServiceWithLifecycleManager
from agentmem.services.memory.memory_service import MemoryService
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = [
    "SyncMemoryService",
    "SyncService",
    "SyncSessionHistoryService",
    "SyncStateService",
    "run",
]

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound=ServiceWithLifecycleManager)

_LOOP = LoopThread("agentmem-sync", "await the coroutine instead")
atexit.register(_LOOP.close)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Run ``awaitable`` on agentmem's private loop and return its result.

    Blocks the calling thread, which may or may not be running an event loop of its
    own. Exceptions of the awaitable propagate unchanged. After ``timeout`` seconds the
    awaitable is cancelled and :class:`TimeoutError` is raised; an interrupt
    (``KeyboardInterrupt``) while waiting also cancels it.

    Raises ``RuntimeError`` when called from a coroutine that itself runs on the
    private loop (it would wait for itself forever): ``await`` there instead.
    """
    if _LOOP.in_loop_thread() and inspect.iscoroutine(awaitable):
        awaitable.close()
    try:
        return _LOOP.run_sync(_await(awaitable), timeout)
    except TimeoutError:
        raise TimeoutError(f"agentmem.sync.run() gave up after {timeout} seconds") from None


def _blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SyncService[Any], P], T]:
    """A blocking method of a sync view calling ``method`` of the wrapped service.

    The call goes to the service's own method of that name, so a backend's override is
    used; the signature and documentation are those of ``method``.
    """
    name = method.__name__

    @functools.wraps(method)
    def call(self: SyncService[Any], /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound: Callable[P, Coroutine[Any, Any, T]] = getattr(self.service, name)
        return run(bound(*args, **kwargs))

    return call


class SyncService(Generic[S]):
    """A synchronous view of an async service: each method call returns its result.

    ``with SyncService(service) as s:`` starts the service and stops it on exit. Any
    coroutine method of the wrapped service, including backend-specific ones, can be
    called synchronously through the wrapper; other attributes are returned as they
    are. The typed subclasses below give each kind of service's public methods their
    signatures and documentation.
    The wrapped service is :attr:`service`; use it only through the wrapper (see the
    module documentation).
    """

    def __init__(self, service: S) -> None:
        if not isinstance(service, ServiceWithLifecycleManager):
            raise TypeError(f"expected an agentmem service, got {type(service).__name__}")
        self.service: S = service

    start = _blocking(ServiceWithLifecycleManager.start)
    stop = _blocking(ServiceWithLifecycleManager.stop)
    health = _blocking(ServiceWithLifecycleManager.health)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.service, name)
        if not callable(attribute):
            return attribute
        return _synchronous(attribute)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.service!r})"


def _synchronous(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        if isinstance(result, Awaitable):
            return run(result)
        return result

    return call


class SyncMemoryService(SyncService[MemoryService]):
    """The methods of a memory service, synchronously."""

    add_memory = _blocking(MemoryService.add_memory)
    search_memory = _blocking(MemoryService.search_memory)
    search_memory_hits = _blocking(MemoryService.search_memory_hits)
    list_memory = _blocking(MemoryService.list_memory)
    list_memory_records = _blocking(MemoryService.list_memory_records)
    list_session_ids = _blocking(MemoryService.list_session_ids)
    delete_memory = _blocking(MemoryService.delete_memory)
    delete_user_memory = _blocking(MemoryService.delete_user_memory)
    clear_all_memory = _blocking(MemoryService.clear_all_memory)
    get_query_text = _blocking(MemoryService.get_query_text)


class SyncSessionHistoryService(SyncService[SessionHistoryService]):
    """The methods of a session history service, synchronously."""

    create_session = _blocking(SessionHistoryService.create_session)
    get_session = _blocking(SessionHistoryService.get_session)
    delete_session = _blocking(SessionHistoryService.delete_session)
    list_sessions = _blocking(SessionHistoryService.list_sessions)
    delete_user_sessions = _blocking(SessionHistoryService.delete_user_sessions)
    append_message = _blocking(SessionHistoryService.append_message)


class SyncStateService(SyncService[StateService]):
    """The methods of a state service, synchronously."""

    save_state = _blocking(StateService.save_state)
    export_state = _blocking(StateService.export_state)
    list_states = _blocking(StateService.list_states)
    list_session_ids = _blocking(StateService.list_session_ids)
    delete_state = _blocking(StateService.delete_state)
