"""Sandbox types by name: ``base``, ``filesystem`` and any registered custom type."""

from __future__ import annotations

import threading

from agentmem.errors import InvalidArgumentError, SandboxUnavailableError
from agentmem.services.sandbox.calls import contract, tool_names
from agentmem.services.sandbox.engines import (
    BaseSandboxEngine,
    FilesystemSandboxEngine,
    SandboxEngine,
)
from agentmem.services.sandbox.handles import BaseSandbox, FilesystemSandbox, Sandbox

__all__ = ["engine_class", "handle_class", "register_sandbox_type", "sandbox_types"]

_lock = threading.Lock()
_TYPES: dict[str, tuple[type[SandboxEngine], type[Sandbox]]] = {
    "base": (BaseSandboxEngine, BaseSandbox),
    "filesystem": (FilesystemSandboxEngine, FilesystemSandbox),
}


def register_sandbox_type(
    name: str,
    engine: type[SandboxEngine],
    handle: type[Sandbox] = Sandbox,
    *,
    replace: bool = False,
) -> None:
    """Make ``name`` usable in ``SandboxService.connect(sandbox_types=[name])``.

    ``engine`` implements the tools (a :class:`SandboxEngine` subclass); ``handle`` is the
    class callers get (default: the generic :class:`Sandbox` with ``call``/``acall``). For
    a remote service, register the engine in the server process (``agentmem sandbox-server
    --import my.module``) and the handle in the client. The annotations of every tool
    must resolve at run time, as they validate its arguments: a tool they do not fit
    raises here, not on its first call.
    """
    if not name.isidentifier():
        raise InvalidArgumentError("name", f"sandbox type names must be identifiers, not {name!r}")
    for tool in tool_names(engine):
        contract(getattr(engine, tool))
    with _lock:
        if name in _TYPES and not replace:
            raise InvalidArgumentError(
                "name", f"sandbox type {name!r} is already registered (pass replace=True)"
            )
        _TYPES[name] = (engine, handle)


def sandbox_types() -> list[str]:
    return sorted(_TYPES)


def engine_class(name: str) -> type[SandboxEngine]:
    try:
        return _TYPES[name][0]
    except KeyError:
        raise SandboxUnavailableError(
            f"unknown sandbox type {name!r}; known types: {', '.join(sandbox_types())}"
        ) from None


def handle_class(name: str) -> type[Sandbox]:
    """The handle for ``name``; the generic one for types only a remote server knows."""
    entry = _TYPES.get(name)
    return entry[1] if entry else Sandbox
