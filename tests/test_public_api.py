"""The public API: ``agentmem.__all__``, the import paths the documentation uses, errors."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import agentmem
import agentmem.errors
from agentmem.errors import (
    AgentMemError,
    BackendError,
    CorruptDataError,
    InvalidArgumentError,
    MissingExtraError,
    NotFoundError,
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
    ServiceNotStartedError,
    UnsupportedOperationError,
)

#: ``from <module> import <name>`` statements of the specification documents, with
#: ``agentscope_runtime.engine.`` / ``agentscope_runtime.`` replaced by ``agentmem.``.
DOCUMENTED_IMPORTS = [
    ("agentmem.services.base", "ServiceWithLifecycleManager"),
    ("agentmem.services.memory", "InMemoryMemoryService"),
    ("agentmem.services.memory", "RedisMemoryService"),
    ("agentmem.services.memory", "TablestoreMemoryService"),
    ("agentmem.services.memory", "Mem0MemoryService"),
    ("agentmem.services.memory", "ReMePersonalMemoryService"),
    ("agentmem.services.memory", "ReMeTaskMemoryService"),
    ("agentmem.services.redis_memory_service", "RedisMemoryService"),
    ("agentmem.services.session_history", "InMemorySessionHistoryService"),
    ("agentmem.services.session_history", "TablestoreSessionHistoryService"),
    ("agentmem.services.agent_state.state_service", "InMemoryStateService"),
    ("agentmem.services.sandbox_service", "SandboxService"),
    ("agentmem.services.utils.tablestore_service_utils", "create_tablestore_client"),
    ("agentmem.services.tablestore_memory_service", "SearchStrategy"),
    ("agentmem.schemas.session", "Session"),
    ("agentmem.schemas.agent_schemas", "Message"),
    ("agentmem.schemas.agent_schemas", "TextContent"),
    ("agentmem.schemas.agent_schemas", "Role"),
    ("agentmem.adapters.agentscope.long_term_memory", "AgentScopeLongTermMemory"),
]


def _is_public_module(module: object) -> bool:
    """Whether ``module`` names a public agentmem module (no part starting with "_")."""
    if not isinstance(module, str) or not module.startswith("agentmem"):
        return False
    return not any(part.startswith("_") for part in module.split("."))


def test_all_is_sorted() -> None:
    assert agentmem.__all__ == sorted(agentmem.__all__)
    assert len(set(agentmem.__all__)) == len(agentmem.__all__)


def test_all_is_complete() -> None:
    exported = set(agentmem.__all__)
    public = {
        name
        for name, value in vars(agentmem).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and _is_public_module(getattr(value, "__module__", None))
    }
    assert public <= exported, f"missing from __all__: {sorted(public - exported)}"
    assert set(agentmem._LAZY) <= exported


def test_every_error_is_exported_from_the_package() -> None:
    errors = {
        name
        for name in agentmem.errors.__all__
        if inspect.isclass(getattr(agentmem.errors, name))
        and issubclass(getattr(agentmem.errors, name), AgentMemError)
    }
    assert errors <= set(agentmem.__all__), sorted(errors - set(agentmem.__all__))


@pytest.mark.parametrize(
    "name",
    [name for name in agentmem.__all__],
)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(agentmem, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        agentmem.Nope  # noqa: B018


@pytest.mark.parametrize(
    ("module", "name"), [pytest.param(*key, id=f"{key[0]}:{key[1]}") for key in DOCUMENTED_IMPORTS]
)
def test_documented_import_path_works(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def test_version() -> None:
    assert agentmem.__version__ == "0.1.0"


def test_error_tree() -> None:
    assert issubclass(ServiceNotStartedError, AgentMemError)
    assert issubclass(ServiceNotStartedError, RuntimeError)
    assert issubclass(MissingExtraError, AgentMemError)
    assert issubclass(MissingExtraError, ImportError)
    assert issubclass(CorruptDataError, BackendError)
    assert issubclass(BackendError, AgentMemError)
    assert issubclass(NotFoundError, AgentMemError)
    assert issubclass(NotFoundError, KeyError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(InvalidArgumentError, TypeError)
    assert issubclass(UnsupportedOperationError, NotImplementedError)
    for sandbox_error in (SandboxPathError, SandboxUnavailableError, SandboxAuthError):
        assert issubclass(sandbox_error, SandboxError)
    assert issubclass(SandboxError, AgentMemError)
    assert issubclass(SandboxPathError, PermissionError)


def test_service_not_started_error_tells_how_to_start() -> None:
    class RemoteThing:
        pass

    message = str(ServiceNotStartedError(RemoteThing()))
    assert message == (
        "RemoteThing is not started: call `await service.start()` first, "
        "or use it as `async with RemoteThing(...) as service:`"
    )


def test_missing_extra_error_tells_what_to_install() -> None:
    error = MissingExtraError("RedisMemoryService", "redis", module="redis.asyncio")
    assert error.extra == "redis"
    assert str(error) == (
        "RedisMemoryService needs the optional dependencies of agentmem-services[redis] "
        "(module 'redis.asyncio' could not be imported): "
        "pip install 'agentmem-services[redis]'"
    )
    assert "could not be imported" not in str(MissingExtraError("Mem0", "mem0"))
    with pytest.raises(ImportError):
        raise MissingExtraError("Mem0", "mem0")


def test_not_found_error_reads_plainly() -> None:
    # KeyError would quote its message; NotFoundError reads as written.
    assert str(NotFoundError("session 's1' of user 'u'")) == "session 's1' of user 'u'"
    assert str(NotFoundError()) == "not found"
