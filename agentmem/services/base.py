"""The lifecycle every agentmem service shares: ``start``, ``stop``, ``health``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["ServiceWithLifecycleManager"]


class ServiceWithLifecycleManager(ABC):
    """Base of every service.

    ``async with service:`` starts the service on entry and stops it on exit, also when
    the block raises. ``start`` and ``stop`` are idempotent in every agentmem backend.
    Backends that hold no connection (the in-memory ones) also work unstarted; backends
    that need one raise :class:`agentmem.errors.ServiceNotStartedError` when used before
    ``start``.
    """

    @abstractmethod
    async def start(self) -> None:
        """Acquire what the service needs (connections, tables, processes)."""

    @abstractmethod
    async def stop(self) -> None:
        """Release what ``start`` acquired."""

    @abstractmethod
    async def health(self) -> bool:
        """Whether the service can serve requests right now. Never raises."""

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
