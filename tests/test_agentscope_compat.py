"""AgentScope Runtime 1.0.5's service surface on agentmem: import paths, signatures, meaning.

Code written for Runtime's memory, session history and state services moves to agentmem
by replacing the prefix ``agentscope_runtime.engine.`` with ``agentmem.``. These tests
hold that promise: Runtime's modules and names import under the new prefix, every
public method of Runtime's in-memory and Redis services exists here and accepts the
calls Runtime accepted, and the methods agentmem keeps for Runtime's sake mean what they
meant there, on every backend. Where agentmem deliberately differs (docs/migration.md),
the test asserts agentmem's rule.
"""

from __future__ import annotations

import importlib
import inspect
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentmem import MemoryService, SessionHistoryService, StateService
from agentmem.errors import InvalidArgumentError, UnsupportedOperationError
from agentmem.schemas.agent_schemas import (
    ContentType,
    DataContent,
    Message,
    MessageType,
    Role,
    TextContent,
)
from agentmem.schemas.session import Session
from agentmem.services.base import Capability
from tests.redis_backends import drop_keys, unique_prefix

# --- import paths -------------------------------------------------------------------

#: Runtime 1.0.5's modules of the three services and what code imports from them, as
#: ``agentmem.`` paths.
RUNTIME_IMPORTS = [
    ("agentmem.services.base", "ServiceWithLifecycleManager"),
    ("agentmem.services.memory", "MemoryService"),
    ("agentmem.services.memory", "InMemoryMemoryService"),
    ("agentmem.services.memory", "RedisMemoryService"),
    ("agentmem.services.memory", "MemoryServiceFactory"),
    ("agentmem.services.memory.memory_service", "MemoryService"),
    ("agentmem.services.memory.memory_service", "InMemoryMemoryService"),
    ("agentmem.services.memory.redis_memory_service", "RedisMemoryService"),
    ("agentmem.services.session_history", "SessionHistoryService"),
    ("agentmem.services.session_history", "InMemorySessionHistoryService"),
    ("agentmem.services.session_history", "RedisSessionHistoryService"),
    ("agentmem.services.session_history", "SessionHistoryServiceFactory"),
    ("agentmem.services.session_history.session_history_service", "SessionHistoryService"),
    (
        "agentmem.services.session_history.session_history_service",
        "InMemorySessionHistoryService",
    ),
    (
        "agentmem.services.session_history.redis_session_history_service",
        "RedisSessionHistoryService",
    ),
    ("agentmem.services.agent_state", "StateService"),
    ("agentmem.services.agent_state", "InMemoryStateService"),
    ("agentmem.services.agent_state", "RedisStateService"),
    ("agentmem.services.agent_state", "StateServiceFactory"),
    ("agentmem.services.agent_state.state_service", "StateService"),
    ("agentmem.services.agent_state.state_service", "InMemoryStateService"),
    ("agentmem.services.agent_state.redis_state_service", "RedisStateService"),
    ("agentmem.schemas.session", "Session"),
    ("agentmem.schemas.agent_schemas", "Message"),
    ("agentmem.schemas.agent_schemas", "MessageType"),
    ("agentmem.schemas.agent_schemas", "TextContent"),
    ("agentmem.schemas.agent_schemas", "ContentType"),
    ("agentmem.schemas.agent_schemas", "Role"),
]


@pytest.mark.parametrize(("module", "name"), RUNTIME_IMPORTS)
def test_runtime_import_path_works_with_the_agentmem_prefix(module: str, name: str) -> None:
    imported = getattr(importlib.import_module(module), name)
    assert getattr(importlib.import_module("agentmem"), name, imported) is imported


def test_the_in_memory_backends_are_the_same_class_from_every_path() -> None:
    from agentmem.services.memory import InMemoryMemoryService
    from agentmem.services.memory.memory_service import (
        InMemoryMemoryService as FromBaseModule,
    )
    from agentmem.services.session_history import InMemorySessionHistoryService
    from agentmem.services.session_history.session_history_service import (
        InMemorySessionHistoryService as SessionsFromBaseModule,
    )

    assert FromBaseModule is InMemoryMemoryService
    assert SessionsFromBaseModule is InMemorySessionHistoryService


# --- signatures ---------------------------------------------------------------------

_NO_DEFAULT = inspect.Parameter.empty
_REDIS_URL = "redis://localhost:6379/0"

#: Runtime 1.0.5's public methods: (parameters after ``self`` with their defaults,
#: coroutine or not). A Runtime call binds to agentmem's method when agentmem takes
#: these parameters first, in this order, with these defaults, and any further
#: parameter has a default.
_MEMORY_METHODS: dict[str, tuple[list[tuple[str, Any]], bool]] = {
    "start": ([], True),
    "stop": ([], True),
    "health": ([], True),
    "add_memory": (
        [("user_id", _NO_DEFAULT), ("messages", _NO_DEFAULT), ("session_id", None)],
        True,
    ),
    "search_memory": (
        [("user_id", _NO_DEFAULT), ("messages", _NO_DEFAULT), ("filters", None)],
        True,
    ),
    "list_memory": ([("user_id", _NO_DEFAULT), ("filters", None)], True),
    "delete_memory": ([("user_id", _NO_DEFAULT), ("session_id", None)], True),
    "get_query_text": ([("message", _NO_DEFAULT)], True),
}
_REDIS_MEMORY_METHODS = {
    **_MEMORY_METHODS,
    "delete_user_memory": ([("user_id", _NO_DEFAULT)], True),
    "clear_all_memory": ([], True),
}
_SESSION_METHODS: dict[str, tuple[list[tuple[str, Any]], bool]] = {
    "start": ([], True),
    "stop": ([], True),
    "health": ([], True),
    "create_session": ([("user_id", _NO_DEFAULT), ("session_id", None)], True),
    "get_session": ([("user_id", _NO_DEFAULT), ("session_id", _NO_DEFAULT)], True),
    "delete_session": ([("user_id", _NO_DEFAULT), ("session_id", _NO_DEFAULT)], True),
    "list_sessions": ([("user_id", _NO_DEFAULT)], True),
    "append_message": ([("session", _NO_DEFAULT), ("message", _NO_DEFAULT)], True),
}
_REDIS_SESSION_METHODS = {
    **_SESSION_METHODS,
    "delete_user_sessions": ([("user_id", _NO_DEFAULT)], True),
}
_STATE_METHODS: dict[str, tuple[list[tuple[str, Any]], bool]] = {
    "start": ([], True),
    "stop": ([], True),
    "health": ([], True),
    "save_state": (
        [
            ("user_id", _NO_DEFAULT),
            ("state", _NO_DEFAULT),
            ("session_id", None),
            ("round_id", None),
        ],
        True,
    ),
    "export_state": ([("user_id", _NO_DEFAULT), ("session_id", None), ("round_id", None)], True),
}

RUNTIME_METHODS = {
    "agentmem.services.memory:MemoryService": _MEMORY_METHODS,
    "agentmem.services.memory:InMemoryMemoryService": _MEMORY_METHODS,
    "agentmem.services.memory:RedisMemoryService": _REDIS_MEMORY_METHODS,
    "agentmem.services.session_history:SessionHistoryService": _SESSION_METHODS,
    "agentmem.services.session_history:InMemorySessionHistoryService": _SESSION_METHODS,
    "agentmem.services.session_history:RedisSessionHistoryService": _REDIS_SESSION_METHODS,
    "agentmem.services.agent_state:StateService": _STATE_METHODS,
    "agentmem.services.agent_state:InMemoryStateService": _STATE_METHODS,
    "agentmem.services.agent_state:RedisStateService": _STATE_METHODS,
}


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    loaded: type = getattr(importlib.import_module(module), name)
    return loaded


def _assert_accepts(function: Any, expected: list[tuple[str, Any]], where: str) -> None:
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    leading = parameters[: len(expected)]
    assert [(p.name, p.default) for p in leading] == expected, where
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert all(p.kind in positional for p in leading), f"{where}: Runtime passes these by position"
    for extra in parameters[len(expected) :]:
        variadic = extra.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        assert variadic or extra.default is not _NO_DEFAULT, f"{where}: {extra.name} is required"


@pytest.mark.parametrize(
    ("path", "method"),
    [(path, method) for path, methods in RUNTIME_METHODS.items() for method in methods],
)
def test_runtime_method_exists_with_a_compatible_signature(path: str, method: str) -> None:
    expected, is_coroutine = RUNTIME_METHODS[path][method]
    function = getattr(_load(path), method)
    assert inspect.iscoroutinefunction(function) is is_coroutine, f"{path}.{method}"
    _assert_accepts(function, expected, f"{path}.{method}")


#: Runtime's Redis constructors' parameters in order, each with a value other than its
#: default; the state service has no ``max_messages_per_session``.
_RUNTIME_REDIS_ARGUMENTS: list[tuple[str, Any]] = [
    ("redis_url", "redis://redis.example:6380/2"),
    ("redis_client", None),
    ("socket_timeout", 1.5),
    ("socket_connect_timeout", 2.5),
    ("max_connections", 7),
    ("retry_on_timeout", False),
    ("ttl_seconds", 60),
    ("max_messages_per_session", 5),
    ("health_check_interval", 10.0),
    ("socket_keepalive", False),
]
_REDIS_SERVICES = {
    "memory": "agentmem.services.memory:RedisMemoryService",
    "session_history": "agentmem.services.session_history:RedisSessionHistoryService",
    "state": "agentmem.services.agent_state:RedisStateService",
}


def _runtime_redis_arguments(kind: str) -> list[tuple[str, Any]]:
    if kind == "state":
        return [item for item in _RUNTIME_REDIS_ARGUMENTS if item[0] != "max_messages_per_session"]
    return _RUNTIME_REDIS_ARGUMENTS


def _assert_connection_from_runtime_arguments(service: Any) -> None:
    connection = service.connection
    assert connection.url == "redis://redis.example:6380/2"
    assert connection.client is None
    assert (connection.socket_timeout, connection.socket_connect_timeout) == (1.5, 2.5)
    assert connection.max_connections == 7
    assert connection.retry_on_timeout is False
    assert connection.health_check_interval == 10.0
    assert connection.socket_keepalive is False
    assert service.ttl_seconds == 60


@pytest.mark.parametrize("kind", sorted(_REDIS_SERVICES))
def test_redis_constructor_takes_runtime_arguments_by_position(kind: str) -> None:
    values = [value for _, value in _runtime_redis_arguments(kind)]
    _assert_connection_from_runtime_arguments(_load(_REDIS_SERVICES[kind])(*values))


@pytest.mark.parametrize("kind", sorted(_REDIS_SERVICES))
def test_redis_constructor_takes_runtime_arguments_by_keyword(kind: str) -> None:
    service = _load(_REDIS_SERVICES[kind])(**dict(_runtime_redis_arguments(kind)))
    _assert_connection_from_runtime_arguments(service)


@pytest.mark.parametrize("kind", sorted(_REDIS_SERVICES))
def test_redis_defaults_are_runtimes_but_data_never_expires(kind: str) -> None:
    service_class = _load(_REDIS_SERVICES[kind])
    service = service_class()
    connection = service.connection
    assert connection.url == _REDIS_URL
    assert (connection.socket_timeout, connection.socket_connect_timeout) == (5.0, 5.0)
    assert connection.retry_on_timeout is True
    assert connection.health_check_interval == 30.0
    assert connection.socket_keepalive is True
    # One expiry rule for the three services: never, unless asked. Runtime's hour is
    # kept by asking for it.
    assert service.ttl_seconds is None
    assert service_class(ttl_seconds=3600).ttl_seconds == 3600
    # Runtime's max_connections=None (no bound) gives agentmem's bounded pool.
    assert service_class(max_connections=None).connection.max_connections == 50


# --- memory: the methods kept for Runtime -----------------------------------------------


def _message(text: str, role: str = Role.USER) -> Message:
    return Message(type=MessageType.MESSAGE, role=role, content=[TextContent(text=text)])


def texts(messages: list[Message]) -> list[str]:
    return [message.get_text_content() or "" for message in messages]


async def test_delete_user_memory_deletes_every_session_of_that_user_only(
    memory_service: MemoryService,
) -> None:
    await memory_service.add_memory("alice", [_message("alice likes tea")], "s1")
    await memory_service.add_memory("alice", [_message("alice likes green tea")], "s2")
    await memory_service.add_memory("bob", [_message("bob likes coffee")])

    await memory_service.delete_user_memory("alice")

    assert await memory_service.list_memory("alice") == []
    assert texts(await memory_service.list_memory("bob")) == ["bob likes coffee"]
    await memory_service.delete_user_memory("nobody")  # deleting nothing is no error


async def test_clear_all_memory_deletes_every_users_memories(
    memory_service: MemoryService,
) -> None:
    if Capability.CLEAR_ALL not in memory_service.capabilities:
        with pytest.raises(UnsupportedOperationError, match="clear"):
            await memory_service.clear_all_memory()
        return
    await memory_service.add_memory("alice", [_message("alice likes tea")])
    await memory_service.add_memory("bob", [_message("bob likes coffee")], "s1")

    await memory_service.clear_all_memory()

    assert await memory_service.list_memory("alice") == []
    assert await memory_service.list_memory("bob") == []
    await memory_service.add_memory("alice", [_message("alice is back")])
    assert texts(await memory_service.list_memory("alice")) == ["alice is back"]


async def test_get_query_text_is_the_first_text_part_of_a_message(
    memory_service: MemoryService,
) -> None:
    several = Message(
        role=Role.USER,
        content=[
            DataContent(data={"k": 1}),
            TextContent(text="first"),
            TextContent(text="second"),
        ],
    )
    assert await memory_service.get_query_text(several) == "first"
    as_dict = {"role": "user", "content": [{"type": ContentType.TEXT, "text": "from a dict"}]}
    assert await memory_service.get_query_text(as_dict) == "from a dict"


@pytest.mark.parametrize(
    "message",
    [
        None,
        Message(
            type=MessageType.FUNCTION_CALL, role=Role.ASSISTANT, content=[TextContent(text="x")]
        ),
        Message(role=Role.USER, content=[DataContent(data={"no": "text"})]),
        Message(role=Role.USER),
    ],
    ids=["none", "not-a-message-type", "no-text-part", "no-content"],
)
async def test_get_query_text_is_empty_without_a_text_part_of_a_message(
    memory_service: MemoryService, message: Message | None
) -> None:
    assert await memory_service.get_query_text(message) == ""


async def test_search_without_a_query_finds_nothing(memory_service: MemoryService) -> None:
    await memory_service.add_memory("alice", [_message("anything at all")])
    assert await memory_service.search_memory("alice", None) == []
    assert await memory_service.search_memory("alice", []) == []


async def test_runtime_style_memory_calls(memory_service: MemoryService) -> None:
    if Capability.RANKED_SEARCH not in memory_service.capabilities:
        pytest.skip(f"{type(memory_service).__name__} does not offer ranked search")
    older, newer = _message("apple banana"), _message("banana cherry")
    await memory_service.add_memory("alice", [older], "s1")
    await memory_service.add_memory("alice", [newer], "s2")

    found = await memory_service.search_memory("alice", [_message("apple"), _message("banana")])
    assert sorted(texts(found)) == ["apple banana", "banana cherry"]
    assert len(await memory_service.search_memory("alice", [_message("banana")], {"top_k": 1})) == 1
    assert await memory_service.search_memory("alice", [_message("durian")]) == []

    page = await memory_service.list_memory("alice", {"page_num": 1, "page_size": 10})
    assert texts(page) == ["apple banana", "banana cherry"]
    assert [m.id for m in page] == [older.id, newer.id]

    await memory_service.delete_memory("alice", "s1")
    assert texts(await memory_service.list_memory("alice")) == ["banana cherry"]
    await memory_service.delete_memory("alice")
    assert await memory_service.list_memory("alice") == []


async def test_a_blank_session_id_is_refused_not_read_as_all_sessions(
    memory_service: MemoryService,
) -> None:
    await memory_service.add_memory("alice", [_message("kept")], "s1")
    with pytest.raises(InvalidArgumentError):
        await memory_service.delete_memory("alice", "")
    assert texts(await memory_service.list_memory("alice")) == ["kept"]


# --- session history ------------------------------------------------------------------


async def test_create_session_strips_the_given_id(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("alice", "  chat-1 ")
    assert session.id == "chat-1"
    assert [s.id for s in await session_service.list_sessions("alice")] == ["chat-1"]
    generated = await session_service.create_session("alice", "   ")
    assert uuid.UUID(generated.id)


async def test_get_session_of_a_missing_session_is_empty_and_stores_nothing(
    session_service: SessionHistoryService,
) -> None:
    session = await session_service.get_session("alice", "never-created")
    assert session == Session(id="never-created", user_id="alice", messages=[])
    assert await session_service.list_sessions("alice") == []


async def test_delete_user_sessions_deletes_that_users_sessions_only(
    session_service: SessionHistoryService,
) -> None:
    first = await session_service.create_session("alice", "one")
    await session_service.create_session("alice", "two")
    await session_service.append_message(first, _message("hello"))
    await session_service.create_session("bob", "one")

    await session_service.delete_user_sessions("alice")

    assert await session_service.list_sessions("alice") == []
    assert (await session_service.get_session("alice", "one")).messages == []
    assert [s.id for s in await session_service.list_sessions("bob")] == ["one"]
    await session_service.delete_user_sessions("nobody")


async def test_runtime_style_session_calls(session_service: SessionHistoryService) -> None:
    session = await session_service.create_session("alice")
    await session_service.append_message(
        session, {"role": "user", "content": [TextContent(text="Hello")]}
    )
    await session_service.append_message(
        session,
        [
            {"role": "assistant", "content": [TextContent(text="Hi")]},
            _message("How are you?"),
        ],
    )
    assert texts(session.messages) == ["Hello", "Hi", "How are you?"]
    assert all(isinstance(message, Message) for message in session.messages)

    stored = await session_service.get_session("alice", session.id)
    assert stored.messages == session.messages
    listed = await session_service.list_sessions("alice")
    assert [(s.id, s.messages) for s in listed] == [(session.id, [])]

    await session_service.delete_session("alice", session.id)
    assert (await session_service.get_session("alice", session.id)).messages == []
    await session_service.delete_session("alice", "never-created")


# --- state ---------------------------------------------------------------------------


async def test_runtime_style_state_calls(state_service: StateService) -> None:
    assert await state_service.save_state("alice", {"round": 1}) == 1
    assert await state_service.save_state("alice", {"round": 2}) == 2
    assert await state_service.save_state("alice", {"round": 10}, None, 10) == 10
    assert await state_service.export_state("alice") == {"round": 10}
    assert await state_service.export_state("alice", None, 2) == {"round": 2}
    assert await state_service.export_state("alice", "default") == {"round": 10}

    assert await state_service.save_state("alice", {"chat": True}, "chat") == 1
    assert await state_service.export_state("alice", "chat") == {"chat": True}
    assert await state_service.export_state("alice", "chat", 999) is None
    assert await state_service.export_state("nobody") is None


# --- Redis: what Runtime's Redis services offered beyond the interfaces ------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = unique_prefix()
    yield prefix
    drop_keys(redis_url, prefix)


async def test_max_messages_per_session_keeps_the_newest_of_each_session(
    redis_url: str, redis_prefix: str
) -> None:
    from agentmem.services.memory import RedisMemoryService
    from agentmem.services.session_history import RedisSessionHistoryService

    async with RedisSessionHistoryService(
        redis_url, max_messages_per_session=3, key_prefix=redis_prefix
    ) as sessions:
        session = await sessions.create_session("alice", "chat")
        for number in range(5):
            await sessions.append_message(session, _message(f"turn {number}"))
        stored = await sessions.get_session("alice", "chat")
        assert texts(stored.messages) == ["turn 2", "turn 3", "turn 4"]

    async with RedisMemoryService(
        redis_url, max_messages_per_session=2, key_prefix=redis_prefix
    ) as memory:
        await memory.add_memory("alice", [_message(f"fact {n}") for n in range(3)], "s1")
        await memory.add_memory("alice", [_message("other fact")], "s2")
        assert texts(await memory.list_memory("alice")) == ["fact 1", "fact 2", "other fact"]


async def test_a_borrowed_redis_client_serves_and_stays_open(
    redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis

    from agentmem.services.agent_state import RedisStateService

    client = aioredis.Redis.from_url(redis_url)
    try:
        service = RedisStateService(redis_client=client, key_prefix=redis_prefix)
        await service.start()
        assert await service.health() is True
        assert await service.save_state("alice", {"k": "v"}) == 1
        await service.stop()
        assert await service.health() is False
        assert await client.ping() is True
    finally:
        await client.aclose()
