"""The interface between :class:`SandboxService` and where sandboxes actually run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from agentmem.services.sandbox.models import SandboxDescriptor, ServiceInfo

__all__ = ["SandboxBackend"]


class SandboxBackend(ABC):
    """Embedded (:mod:`.local`) or remote (:mod:`.remote`); all calls on one event loop."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def health(self) -> bool: ...

    @abstractmethod
    async def info(self) -> ServiceInfo: ...

    @abstractmethod
    async def connect(
        self, session_id: str, user_id: str | None, sandbox_types: list[str]
    ) -> list[SandboxDescriptor]: ...

    @abstractmethod
    async def release(self, session_id: str, user_id: str | None) -> int: ...

    @abstractmethod
    async def invoke(self, sandbox_id: str, tool: str, arguments: dict[str, Any]) -> Any: ...
