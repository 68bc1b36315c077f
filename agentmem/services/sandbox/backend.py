"""The interface between :class:`SandboxService` and where sandboxes actually run.

Its marked methods are the operations of the sandbox server: defined here once, they are
implemented by the embedded backend (:mod:`.local`), served by name over HTTP
(:mod:`.server`) and called by name by the remote backend (:mod:`.remote`), all through
:mod:`.calls`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel

from agentmem.services.sandbox.calls import tool
from agentmem.services.sandbox.models import ServiceInfo

__all__ = ["SandboxBackend", "SandboxDescriptor"]


class SandboxDescriptor(BaseModel):
    """Identity of one live sandbox, as the backend (embedded or remote) reports it."""

    sandbox_id: str
    sandbox_type: str
    session_id: str
    user_id: str | None
    work_dir: str
    tools: list[str]


class SandboxBackend(ABC):
    """Embedded (:mod:`.local`) or remote (:mod:`.remote`); all calls on one event loop."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @tool
    @abstractmethod
    async def health(self) -> bool:
        """Whether the backend can serve right now (remote: the server's answer)."""

    @tool
    @abstractmethod
    async def info(self) -> ServiceInfo:
        """Isolation, limits, sandbox types and live sandboxes of the embedded backend."""

    @tool
    @abstractmethod
    async def connect(
        self, session_id: str, user_id: str | None, sandbox_types: list[str]
    ) -> list[SandboxDescriptor]:
        """The sandboxes of the session, one per type, created where missing."""

    @tool
    @abstractmethod
    async def release(self, session_id: str, user_id: str | None) -> int:
        """Kill the session's sandboxes and delete its files; returns how many there were."""

    @tool
    @abstractmethod
    async def invoke(self, sandbox_id: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Run tool ``tool`` of a live sandbox with JSON arguments; returns JSON."""
