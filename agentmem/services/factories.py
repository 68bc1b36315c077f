"""Create services by backend name, from arguments or the environment.

Each factory knows its backends by name and reads, when asked, ``<PREFIX>_BACKEND`` and
``<PREFIX>_<BACKEND>_<PARAM>`` variables, e.g. ``MEMORY_BACKEND=redis`` and
``MEMORY_REDIS_REDIS_URL=redis://localhost:6379/0``. Values from the environment are
converted to the constructor's annotated types; explicit keyword arguments win.
"""

from __future__ import annotations

import importlib
import inspect
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import typing_extensions
from pydantic import TypeAdapter

from agentmem.services.agent_state.state_service import StateService
from agentmem.services.base import ServiceWithLifecycleManager
from agentmem.services.memory.memory_service import MemoryService
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = [
    "MemoryServiceFactory",
    "ServiceFactory",
    "SessionHistoryServiceFactory",
    "StateServiceFactory",
]

S = TypeVar("S", bound=ServiceWithLifecycleManager)

# typing.Unpack and, before Python 3.12, typing_extensions' own for ``**kwargs``.
_UNPACK = {typing.Unpack, typing_extensions.Unpack}

# A backend is either a class (or any callable returning a service) or the dotted path
# "module:Name" of one, imported only when that backend is created.
Backend = Callable[..., Any] | str


def _resolve(backend: Backend) -> Callable[..., Any]:
    if callable(backend):
        return backend
    module, _, name = backend.partition(":")
    resolved: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return resolved


def _keyword_parameters(constructor: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters of ``constructor`` and their annotations (``str`` where
    unknown), counting the keys of a ``**kwargs: Unpack[SomeTypedDict]``."""
    target = constructor.__init__ if inspect.isclass(constructor) else constructor
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        hints = {}
    found: dict[str, Any] = {}
    for name, parameter in inspect.signature(constructor).parameters.items():
        hint = hints.get(name, str)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            if typing.get_origin(hint) in _UNPACK:
                found.update(typing.get_type_hints(typing.get_args(hint)[0]))
            continue
        found[name] = hint
    return found


def _env_kwargs(
    constructor: Callable[..., Any], prefix: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Keyword arguments for ``constructor`` read from ``<prefix><PARAM>`` variables."""
    kwargs: dict[str, Any] = {}
    for name, annotation in _keyword_parameters(constructor).items():
        raw = environ.get(f"{prefix}{name.upper()}")
        if raw is None:
            continue
        try:
            kwargs[name] = TypeAdapter(annotation).validate_strings(raw)
        except (ValueError, TypeError):
            try:
                kwargs[name] = TypeAdapter(annotation).validate_json(raw)
            except ValueError as exc:
                raise ValueError(f"{prefix}{name.upper()}={raw!r}: {exc}") from None
    return kwargs


class ServiceFactory(Generic[S]):
    """Base of the factories: a registry of backends and the environment convention."""

    env_prefix: ClassVar[str]
    service_type: ClassVar[type[ServiceWithLifecycleManager]]
    _backends: ClassVar[dict[str, Backend]]

    @classmethod
    def register(cls, name: str, backend: Backend) -> None:
        """Make ``backend`` creatable as ``name`` (replacing any backend of that name)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"backend name must be a non-empty string, got {name!r}")
        cls._backends[name.strip().lower()] = backend

    @classmethod
    def backends(cls) -> list[str]:
        """The names of the known backends, sorted."""
        return sorted(cls._backends)

    @classmethod
    def create(
        cls,
        backend: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> S:
        """Create a service of ``backend``, or of ``<PREFIX>_BACKEND`` (default in_memory).

        Keyword arguments go to the backend's constructor; parameters not given are read
        from ``<PREFIX>_<BACKEND>_<PARAM>`` variables of ``environ`` (``os.environ`` by
        default).
        """
        env = os.environ if environ is None else environ
        name = (backend or env.get(f"{cls.env_prefix}_BACKEND") or "in_memory").strip().lower()
        if name not in cls._backends:
            raise ValueError(
                f"unknown {cls.service_type.__name__} backend {name!r}; "
                f"known backends: {', '.join(cls.backends())}"
            )
        constructor = _resolve(cls._backends[name])
        from_env = _env_kwargs(constructor, f"{cls.env_prefix}_{name.upper()}_", env)
        service = constructor(**{**from_env, **kwargs})
        if not isinstance(service, cls.service_type):
            raise TypeError(
                f"backend {name!r} created a {type(service).__name__}, "
                f"not a {cls.service_type.__name__}"
            )
        return typing.cast(S, service)


class MemoryServiceFactory(ServiceFactory[MemoryService]):
    """Creates memory services; environment prefix ``MEMORY``."""

    env_prefix = "MEMORY"
    service_type = MemoryService
    _backends: ClassVar[dict[str, Backend]] = {
        "in_memory": "agentmem.services.memory.in_memory_memory_service:InMemoryMemoryService",
        "redis": "agentmem.services.memory.redis:RedisMemoryService",
        "sqlite": "agentmem.services.memory.sqlite_memory_service:SQLiteMemoryService",
        "tablestore": "agentmem.services.memory.tablestore_memory_service:TablestoreMemoryService",
        "mem0": "agentmem.services.memory.mem0_memory_service:Mem0MemoryService",
        "reme_personal": "agentmem.services.memory.reme_memory_service:ReMePersonalMemoryService",
        "reme_task": "agentmem.services.memory.reme_memory_service:ReMeTaskMemoryService",
    }


class SessionHistoryServiceFactory(ServiceFactory[SessionHistoryService]):
    """Creates session history services; environment prefix ``SESSION_HISTORY``."""

    env_prefix = "SESSION_HISTORY"
    service_type = SessionHistoryService
    _backends: ClassVar[dict[str, Backend]] = {
        "in_memory": (
            "agentmem.services.session_history.in_memory_session_history_service"
            ":InMemorySessionHistoryService"
        ),
        "redis": (
            "agentmem.services.session_history.redis_session_history_service"
            ":RedisSessionHistoryService"
        ),
        "sqlite": (
            "agentmem.services.session_history.sqlite_session_history_service"
            ":SQLiteSessionHistoryService"
        ),
        "tablestore": (
            "agentmem.services.session_history.tablestore_session_history_service"
            ":TablestoreSessionHistoryService"
        ),
    }


class StateServiceFactory(ServiceFactory[StateService]):
    """Creates state services; environment prefix ``STATE``."""

    env_prefix = "STATE"
    service_type = StateService
    _backends: ClassVar[dict[str, Backend]] = {
        "in_memory": "agentmem.services.agent_state.state_service:InMemoryStateService",
        "redis": "agentmem.services.agent_state.redis_state_service:RedisStateService",
        "sqlite": "agentmem.services.agent_state.sqlite_state_service:SQLiteStateService",
    }
