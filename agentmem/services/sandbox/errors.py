"""The sandbox's errors, which live in :mod:`agentmem.errors` with all of agentmem's."""

from __future__ import annotations

from agentmem.errors import (
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)

__all__ = [
    "SandboxAuthError",
    "SandboxError",
    "SandboxPathError",
    "SandboxUnavailableError",
]
