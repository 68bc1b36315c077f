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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from agentmem._loop_thread import LoopThread
from agentmem.schemas.agent_schemas import Message
from agentmem.schemas.session import Session
from agentmem.services.agent_state.state_service import StateService
from agentmem.services.base import ServiceWithLifecycleManager
from agentmem.services.memory.memory_service import MemoryHit, MemoryService
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = [
    "SyncMemoryService",
    "SyncService",
    "SyncSessionHistoryService",
    "SyncStateService",
    "run",
]

T = TypeVar("T")
S = TypeVar("S", bound=ServiceWithLifecycleManager)

MessagesArg = Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any]


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


class SyncService(Generic[S]):
    """A synchronous view of an async service: each method call returns its result.

    ``with SyncService(service) as s:`` starts the service and stops it on exit. Any
    coroutine method of the wrapped service, including backend-specific ones, can be
    called synchronously through the wrapper; other attributes are returned as they
    are. The typed subclasses below spell out the methods of each kind of service.
    The wrapped service is :attr:`service`; use it only through the wrapper (see the
    module documentation).
    """

    def __init__(self, service: S) -> None:
        if not isinstance(service, ServiceWithLifecycleManager):
            raise TypeError(f"expected an agentmem service, got {type(service).__name__}")
        self.service: S = service

    def start(self) -> None:
        """Start the service."""
        run(self.service.start())

    def stop(self) -> None:
        """Stop the service."""
        run(self.service.stop())

    def health(self) -> bool:
        """Whether the service can serve requests right now."""
        return run(self.service.health())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    def add_memory(
        self, user_id: str, messages: MessagesArg, session_id: str | None = None
    ) -> None:
        run(self.service.add_memory(user_id, messages, session_id))

    def search_memory(
        self,
        user_id: str,
        messages: MessagesArg | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        return run(self.service.search_memory(user_id, messages, filters))

    def search_memory_hits(
        self,
        user_id: str,
        messages: MessagesArg | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        return run(self.service.search_memory_hits(user_id, messages, filters))

    def list_memory(self, user_id: str, filters: Mapping[str, Any] | None = None) -> list[Message]:
        return run(self.service.list_memory(user_id, filters))

    def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        run(self.service.delete_memory(user_id, session_id))


class SyncSessionHistoryService(SyncService[SessionHistoryService]):
    """The methods of a session history service, synchronously."""

    def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        return run(self.service.create_session(user_id, session_id))

    def get_session(self, user_id: str, session_id: str) -> Session:
        return run(self.service.get_session(user_id, session_id))

    def delete_session(self, user_id: str, session_id: str) -> None:
        run(self.service.delete_session(user_id, session_id))

    def list_sessions(self, user_id: str) -> list[Session]:
        return run(self.service.list_sessions(user_id))

    def append_message(self, session: Session, message: MessagesArg) -> None:
        run(self.service.append_message(session, message))


class SyncStateService(SyncService[StateService]):
    """The methods of a state service, synchronously."""

    def save_state(
        self,
        user_id: str,
        state: Mapping[str, Any],
        session_id: str | None = None,
        round_id: int | None = None,
    ) -> int:
        return run(self.service.save_state(user_id, state, session_id, round_id))

    def export_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> dict[str, Any] | None:
        return run(self.service.export_state(user_id, session_id, round_id))

    def list_states(self, user_id: str, session_id: str | None = None) -> list[int]:
        return run(self.service.list_states(user_id, session_id))

    def delete_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> None:
        run(self.service.delete_state(user_id, session_id, round_id))
