"""Errors raised by the sandbox service, all under :class:`agentmem.errors.AgentMemError`.

::

    AgentMemError
    └── SandboxError                   a sandbox could not do what was asked
        ├── SandboxPathError           a filesystem path leaves the sandbox (also PermissionError)
        ├── SandboxUnavailableError    the requested isolation or sandbox cannot be provided
        └── SandboxAuthError           the sandbox server rejected the bearer token

Code that *runs* inside a sandbox and fails (an exception in a cell, a non-zero exit code,
a timeout, a resource limit) is not an error of the service: it is reported in the
returned :class:`~agentmem.services.sandbox.models.CellResult` or
:class:`~agentmem.services.sandbox.models.ShellResult`.
"""

from __future__ import annotations

from agentmem.errors import AgentMemError

__all__ = [
    "SandboxAuthError",
    "SandboxError",
    "SandboxPathError",
    "SandboxUnavailableError",
]


class SandboxError(AgentMemError):
    """A sandbox operation failed; the message says why."""


class SandboxPathError(SandboxError, PermissionError):
    """A filesystem path points outside the sandbox's directory or through a symlink."""


class SandboxUnavailableError(SandboxError):
    """The sandbox, its type or the requested isolation cannot be provided on this host."""


class SandboxAuthError(SandboxError):
    """The sandbox server answered 401: the bearer token is missing or wrong."""
