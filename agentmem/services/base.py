"""What every agentmem service shares: the lifecycle, ``health`` and error mapping."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, Self

from agentmem.errors import AgentMemError, UnsupportedOperationError, map_errors

__all__ = ["Capability", "InProcessLifecycle", "ServiceWithLifecycleManager"]


class Capability(StrEnum):
    """Optional operations a backend may offer; see each service's ``capabilities``.

    A call that needs one the backend lacks raises
    :class:`agentmem.errors.UnsupportedOperationError`, and the conformance suite
    skips the tests that need it.
    """

    #: Search results come best first by :mod:`agentmem.search.ranking`, identically in
    #: every backend that has it.
    RANKED_SEARCH = "ranked_search"
    #: ``list_memory`` filters by ``session_id``.
    LIST_BY_SESSION = "list_by_session"
    #: ``delete_memory`` with a ``session_id`` deletes that session only.
    DELETE_BY_SESSION = "delete_by_session"
    #: The service lists the session ids a user has (``list_session_ids``).
    LIST_SESSIONS = "list_sessions"
    #: ``add_memory(created_at=...)`` stores the given creation time (imports keep times).
    CREATION_TIME = "creation_time"
    #: ``clear_all_memory`` deletes every user's memories.
    CLEAR_ALL = "clear_all"
    #: A session holds a message id at most once: adding or appending a message whose id
    #: the session already holds stores nothing, so retrying a write that raised (and
    #: may have been applied) is safe.
    IDEMPOTENT_WRITES = "idempotent_writes"


class ServiceWithLifecycleManager(ABC):
    """Base of every service.

    ``async with service:`` starts the service on entry and stops it on exit, also when
    the block raises. ``start`` and ``stop`` are idempotent in every agentmem backend.
    Backends that hold no connection (the in-memory ones) also work unstarted; backends
    that need one raise :class:`agentmem.errors.ServiceNotStartedError` when used before
    ``start``.

    A backend implements ``start``, ``stop`` and :meth:`_check_health`; errors of its
    driver are mapped in one place, :meth:`_mapped`, whose policy is that of
    :func:`agentmem.errors.map_errors`.
    """

    #: The optional operations this backend offers.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Seconds ``health()`` waits for an answer before it says False.
    health_timeout: float = 1.0

    @abstractmethod
    async def start(self) -> None:
        """Acquire what the service needs (connections, tables, processes)."""

    @abstractmethod
    async def stop(self) -> None:
        """Release what ``start`` acquired."""

    async def health(self) -> bool:
        """Whether the service can serve requests right now.

        A real round trip where there is a server, answered within
        :attr:`health_timeout` seconds whatever the server does. Never raises.
        """
        try:
            return await asyncio.wait_for(self._check_health(), self.health_timeout)
        except Exception:  # health answers False for any failure, never raises
            return False

    async def _check_health(self) -> bool:
        """One round trip to the storage (True when there is none to make).

        Every agentmem backend implements it (the data services' bases declare it
        abstract); a service that overrides :meth:`health` itself need not.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement _check_health")

    def _classify_error(self, exc: Exception) -> type[AgentMemError] | None:
        """The agentmem error a driver's exception stands for; None: BackendError."""
        return None

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        """Map what the block raises, as :func:`agentmem.errors.map_errors` says."""
        with map_errors(f"{type(self).__name__}: {action}", self._classify_error):
            yield

    def _require(self, capability: Capability, operation: str) -> None:
        """Raise UnsupportedOperationError unless the backend offers ``capability``."""
        if capability not in self.capabilities:
            raise UnsupportedOperationError(
                f"{type(self).__name__} cannot {operation}: this backend does not offer "
                f"the {capability.value!r} capability"
            )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class InProcessLifecycle:
    """The lifecycle of a backend whose data lives in the process (the in-memory ones).

    Mixed in before the service base: nothing to acquire, so the service works
    unstarted; stopping keeps the data, so a stopped service can be started again; it
    is healthy whenever the process runs.
    """

    async def start(self) -> None:
        """Nothing to acquire; kept for the common lifecycle."""

    async def stop(self) -> None:
        """Keeps the data: a stopped in-memory service can be started again."""

    async def _check_health(self) -> bool:
        return True
