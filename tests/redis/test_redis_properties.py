"""Random sequences of operations observe the same results on in-memory, Redis and Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem import (
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    RedisMemoryService,
    RedisSessionHistoryService,
    RedisStateService,
    Session,
)
from tests.helpers import text_message
from tests.redis_backends import drop_keys, unique_prefix

USERS = st.sampled_from(["alice", "alice:x", "*", "{b}"])
SESSIONS = st.sampled_from(["s1", "s2", "default", "?"])
TEXT = st.lists(st.sampled_from(["tea", "cake", "lake", "sunrise", "the", "paint"]), max_size=4)

OPERATIONS = st.one_of(
    st.tuples(st.just("add_memory"), USERS, st.lists(TEXT, min_size=1, max_size=3), SESSIONS),
    st.tuples(st.just("search"), USERS, TEXT, st.sampled_from([None, "s1"])),
    st.tuples(st.just("list_memory"), USERS, st.integers(1, 3), st.sampled_from([None, "s2"])),
    st.tuples(st.just("delete_memory"), USERS, st.sampled_from([None, "s1"])),
    st.tuples(st.just("memory_sessions"), USERS),
    st.tuples(st.just("append"), USERS, SESSIONS, TEXT),
    st.tuples(st.just("create_session"), USERS, SESSIONS),
    st.tuples(st.just("get_session"), USERS, SESSIONS),
    st.tuples(st.just("delete_session"), USERS, SESSIONS),
    st.tuples(st.just("list_sessions"), USERS),
    st.tuples(st.just("save_state"), USERS, SESSIONS, st.sampled_from([None, 1, 3])),
    st.tuples(st.just("export_state"), USERS, SESSIONS, st.sampled_from([None, 1])),
    st.tuples(st.just("delete_state"), USERS, SESSIONS, st.sampled_from([None, 1])),
    st.tuples(st.just("list_states"), USERS, SESSIONS),
    st.tuples(st.just("state_sessions"), USERS),
)


async def _apply(services: tuple[Any, Any, Any], operation: tuple[Any, ...], step: int) -> Any:
    """Run one operation; return what a caller observes of it."""
    memory, sessions, states = services
    name, user, *args = operation
    if name == "add_memory":
        messages = [
            text_message(" ".join(words), id=f"m{step}-{i}") for i, words in enumerate(args[0])
        ]
        return await memory.add_memory(user, messages, args[1])
    if name == "search":
        filters = {"session_id": args[1]} if args[1] else None
        hits = await memory.search_memory_hits(user, " ".join(args[0]), filters)
        return [(hit.message.id, hit.score, hit.session_id) for hit in hits]
    if name == "list_memory":
        filters = {"page_num": args[0], "page_size": 2}
        if args[1]:
            filters["session_id"] = args[1]
        records = await memory.list_memory_records(user, filters)
        return [(record.message.id, record.session_id) for record in records]
    if name == "delete_memory":
        return await memory.delete_memory(user, args[0])
    if name == "memory_sessions":
        return await memory.list_session_ids(user)
    if name == "append":
        message = text_message(" ".join(args[1]), id=f"m{step}")
        return await sessions.append_message(Session(id=args[0], user_id=user), message)
    if name == "create_session":
        return (await sessions.create_session(user, args[0])).model_dump()
    if name == "get_session":
        return (await sessions.get_session(user, args[0])).model_dump()
    if name == "delete_session":
        return await sessions.delete_session(user, args[0])
    if name == "list_sessions":
        return [session.id for session in await sessions.list_sessions(user)]
    if name == "save_state":
        return await states.save_state(user, {"step": step}, args[0], args[1])
    if name == "export_state":
        return await states.export_state(user, args[0], args[1])
    if name == "delete_state":
        return await states.delete_state(user, args[0], args[1])
    if name == "state_sessions":
        return await states.list_session_ids(user)
    return await states.list_states(user, args[0])


async def _observe(url: str, operations: list[tuple[Any, ...]]) -> list[list[Any]]:
    prefix = unique_prefix()
    in_memory = (InMemoryMemoryService(), InMemorySessionHistoryService(), InMemoryStateService())
    redis = (
        RedisMemoryService(url, key_prefix=prefix),
        RedisSessionHistoryService(url, key_prefix=prefix),
        RedisStateService(url, key_prefix=prefix),
    )
    for service in redis:
        await service.start()
    try:
        observed = []
        for step, operation in enumerate(operations):
            observed.append(
                [await _apply(backend, operation, step) for backend in (in_memory, redis)]
            )
        return observed
    finally:
        for service in redis:
            await service.stop()
        drop_keys(url, prefix)


@pytest.mark.parametrize("url_fixture", ["redis_url", "redis_cluster_url"])
def test_random_operations_observe_the_same_results(
    request: pytest.FixtureRequest, url_fixture: str
) -> None:
    url = request.getfixturevalue(url_fixture)
    examples: list[int] = []

    # Each example runs in a loop of its own, so the services live and die inside it.
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(OPERATIONS, min_size=1, max_size=25))
    def check(operations: list[tuple[Any, ...]]) -> None:
        for operation, (expected, found) in zip(
            operations, asyncio.run(_observe(url, operations)), strict=True
        ):
            assert found == expected, operation
        examples.append(len(operations))

    check()
    assert len(examples) >= 20
