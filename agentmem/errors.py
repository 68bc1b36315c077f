"""Every error agentmem raises on purpose.

The tree::

    AgentMemError
    ├── ServiceNotStartedError      a backend that needs a connection was used before start()
    ├── MissingExtraError           an optional backend was used without its pip extra
    │                               (also an ImportError, so ``except ImportError`` works)
    ├── BackendError                the storage behind a service failed (connection lost,
    │   │                           timeout...); the driver's exception is its ``__cause__``
    │   └── CorruptDataError        stored data could not be decoded
    └── NotFoundError               a thing the caller named does not exist (also a KeyError)

Bad arguments raise the built-in ``ValueError``/``TypeError`` (or pydantic's
``ValidationError``, itself a ``ValueError``), so callers can treat them like any other
Python API misuse.
"""

from __future__ import annotations

__all__ = [
    "AgentMemError",
    "BackendError",
    "CorruptDataError",
    "MissingExtraError",
    "NotFoundError",
    "ServiceNotStartedError",
]


class AgentMemError(Exception):
    """Base of the errors agentmem raises on purpose."""


class ServiceNotStartedError(AgentMemError, RuntimeError):
    """A service that holds a connection was used before ``await service.start()``."""

    def __init__(self, service: object) -> None:
        name = type(service).__name__
        super().__init__(
            f"{name} is not started: call `await service.start()` first, "
            f"or use it as `async with {name}(...) as service:`"
        )


class MissingExtraError(AgentMemError, ImportError):
    """An optional backend's dependencies are not installed."""

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        self.extra = extra
        detail = f" (module {module!r} could not be imported)" if module else ""
        super().__init__(
            f"{feature} needs the optional dependencies of agentmem[{extra}]{detail}: "
            f"pip install 'agentmem[{extra}]'"
        )


class BackendError(AgentMemError):
    """The storage behind a service failed; the original exception is ``__cause__``."""


class CorruptDataError(BackendError):
    """Stored data could not be decoded into agentmem's types."""


class NotFoundError(AgentMemError, KeyError):
    """A thing the caller named does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
