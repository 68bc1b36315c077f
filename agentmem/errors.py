"""Every error agentmem raises on purpose, and the one place a driver's errors are mapped.

The tree::

    AgentMemError
    ├── InvalidArgumentError        an argument breaks the contract (also a ValueError and a
    │                               TypeError); nothing was stored. ``field`` and ``rule``
    │                               say which argument and which rule
    ├── UnsupportedOperationError   this backend cannot do that optional operation (also a
    │                               NotImplementedError)
    ├── ServiceNotStartedError      a backend that needs a connection was used before start()
    ├── MissingExtraError           an optional backend was used without its pip extra
    │                               (also an ImportError, so ``except ImportError`` works)
    ├── BackendError                the storage behind a service failed (connection lost,
    │   │                           timeout...); the driver's exception is its ``__cause__``
    │   └── CorruptDataError        stored data could not be decoded
    ├── NotFoundError               a thing the caller named does not exist (also a KeyError)
    └── SandboxError                a sandbox could not do what was asked
        ├── SandboxPathError        a path leaves the sandbox (also a PermissionError)
        ├── SandboxUnavailableError the requested isolation or sandbox cannot be provided
        └── SandboxAuthError        the sandbox server rejected the bearer token

The policy of :func:`map_errors`, which every backend's storage calls go through: an
:class:`AgentMemError` passes unchanged; any other ``Exception`` becomes the error the
backend's classifier names, else :class:`BackendError`, with the original as
``__cause__``. So a caller catches ``AgentMemError`` and never a driver's own exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "AgentMemError",
    "BackendError",
    "CorruptDataError",
    "InvalidArgumentError",
    "MissingExtraError",
    "NotFoundError",
    "SandboxAuthError",
    "SandboxError",
    "SandboxPathError",
    "SandboxUnavailableError",
    "ServiceNotStartedError",
    "UnsupportedOperationError",
    "map_errors",
]


class AgentMemError(Exception):
    """Base of the errors agentmem raises on purpose."""


class InvalidArgumentError(AgentMemError, ValueError, TypeError):
    """An argument breaks the service contract; the call stored nothing.

    ``field`` names the argument (``"metadata.a.b"``, ``"messages[3].content"``...) and
    ``rule`` the rule it breaks, in words. It is both a ``ValueError`` and a
    ``TypeError``, so ``except ValueError`` and ``except TypeError`` both catch it.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class UnsupportedOperationError(AgentMemError, NotImplementedError):
    """The backend cannot perform an optional operation; the message says which."""


class ServiceNotStartedError(AgentMemError, RuntimeError):
    """A service that holds a connection was used before ``await service.start()``."""

    def __init__(self, service: object) -> None:
        name = type(service).__name__
        super().__init__(
            f"{name} is not started: call `await service.start()` first, "
            f"or use it as `async with {name}(...) as service:`"
        )


# The name agentmem is installed by (its import name is agentmem).
_DISTRIBUTION = "agentmem-services"


class MissingExtraError(AgentMemError, ImportError):
    """An optional backend's dependencies are not installed."""

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        self.extra = extra
        detail = f" (module {module!r} could not be imported)" if module else ""
        super().__init__(
            f"{feature} needs the optional dependencies of {_DISTRIBUTION}[{extra}]{detail}: "
            f"pip install '{_DISTRIBUTION}[{extra}]'"
        )


class BackendError(AgentMemError):
    """The storage behind a service failed; the original exception is ``__cause__``."""


class CorruptDataError(BackendError):
    """Stored data could not be decoded into agentmem's types."""


class NotFoundError(AgentMemError, KeyError):
    """A thing the caller named does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class SandboxError(AgentMemError):
    """A sandbox operation failed; the message says why.

    Code that *runs* inside a sandbox and fails (an exception in a cell, a non-zero exit
    code, a timeout, a resource limit) is not an error of the service: it is reported in
    the returned result.
    """


class SandboxPathError(SandboxError, PermissionError):
    """A filesystem path points outside the sandbox's directory or through a symlink."""


class SandboxUnavailableError(SandboxError):
    """The sandbox, its type or the requested isolation cannot be provided on this host."""


class SandboxAuthError(SandboxError):
    """The sandbox server refused the bearer token: missing or wrong (401), or not allowed
    to act for that user (403)."""


#: Names the agentmem error a driver's exception stands for, or None for the default.
ErrorClassifier = Callable[[Exception], type[AgentMemError] | None]


@contextmanager
def map_errors(action: str, classify: ErrorClassifier | None = None) -> Iterator[None]:
    """Map what the block raises into agentmem's errors (see the module docstring).

    The mapped error reads ``"<action> failed: <driver's message>"``, so ``action``
    names the service and the operation, e.g. ``"RedisMemoryService: add memories"``.
    """
    try:
        yield
    except AgentMemError:
        raise
    except Exception as exc:
        kind = (classify(exc) if classify is not None else None) or BackendError
        raise kind(f"{action} failed: {exc}") from exc
