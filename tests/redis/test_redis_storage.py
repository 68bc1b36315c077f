"""What the Redis backends store beyond messages: sessions, creation times, round ids."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from agentmem import InMemoryMemoryService, InMemoryStateService, InvalidArgumentError
from agentmem.limits import MAX_ROUND_ID
from tests.helpers import text_message, texts
from tests.redis.conftest import Services


async def test_memory_sessions_are_listed_in_the_order_first_used(services: Services) -> None:
    memory = await services.memory()
    for session in ["b", "a", "*", "b", "{c}"]:
        await memory.add_memory("u1", [text_message(f"tea in {session}")], session)
    await memory.add_memory("u1", [text_message("no session")])
    await memory.add_memory("u2", [text_message("tea")], "other")
    assert await memory.list_session_ids("u1") == ["b", "a", "*", "{c}", "default"]
    assert await memory.list_session_ids("u2") == ["other"]
    assert await memory.list_session_ids("nobody") == []


async def test_a_session_leaves_the_list_with_its_last_memory(services: Services) -> None:
    memory = await services.memory(max_messages_per_session=2)
    for session in ["a", "b", "c"]:
        await memory.add_memory("u1", [text_message("tea"), text_message("cake")], session)
    # Trimming keeps the newest memories, so the session stays.
    await memory.add_memory("u1", [text_message("more tea")], "a")
    await memory.delete_memory("u1", "b")
    assert await memory.list_session_ids("u1") == ["a", "c"]
    await memory.add_memory("u1", [text_message("tea again")], "b")
    assert await memory.list_session_ids("u1") == ["a", "c", "b"]
    for session in ["a", "b", "c"]:
        await memory.delete_memory("u1", session)
    assert await memory.list_session_ids("u1") == []
    assert await services.keys() == []


async def test_records_carry_their_session_and_creation_time(services: Services) -> None:
    memory, reference = await services.memory(), InMemoryMemoryService()
    imported = datetime(2024, 5, 1, 12, 0, 0, 250_001, tzinfo=UTC)
    before = time.time()
    now, tea, cake = (
        [text_message("old tea"), text_message("old cake")],
        text_message("tea"),
        text_message("cake"),
    )
    for service in (memory, reference):
        await service.add_memory("u1", now, "a")
        await service.add_memory("u1", [tea], "b", created_at=imported)
        await service.add_memory("u1", [cake], created_at=1_714_564_800.123456)
    records = await memory.list_memory_records("u1")
    assert [(r.session_id, texts([r.message])[0]) for r in records] == [
        ("a", "old tea"),
        ("a", "old cake"),
        ("b", "tea"),
        ("default", "cake"),
    ]
    assert records[0].created_at == records[1].created_at
    assert before <= records[0].created_at.timestamp() <= time.time()
    assert records[2].created_at == imported
    assert records[3].created_at.timestamp() == 1_714_564_800.123456
    expected = await reference.list_memory_records("u1")
    assert [r.message for r in records] == [r.message for r in expected]
    assert records[2:] == expected[2:]
    session_page = {"session_id": "a", "page_size": 1, "page_num": 2}
    assert await memory.list_memory_records("u1", session_page) == [records[1]]
    [hit] = await memory.search_memory_hits("u1", "tea", {"session_id": "b"})
    assert (hit.session_id, hit.created_at) == ("b", imported)


async def test_clear_all_memory_deletes_the_memories_of_its_prefix_only(
    services: Services,
) -> None:
    memory = await services.memory()
    # A prefix that is a glob and one that extends this one: neither may be matched.
    glob = await services.memory(key_prefix=f"{services.prefix}:*")
    nested = await services.memory(key_prefix=f"{services.prefix}:x")
    sessions, states = await services.sessions(), await services.states()
    users = [f"user {number}" for number in range(300)] + ["*", "{b}", "x"]
    # Some 2,400 keys, more than one SCAN and UNLINK batch.
    await asyncio.gather(*(memory.add_memory(user, [text_message("tea")]) for user in users))
    for other in (glob, nested):
        await other.add_memory("x", [text_message("kept tea")])
    await sessions.create_session("x", "s")
    await states.save_state("x", {"v": 1})
    await glob.clear_all_memory()
    assert await glob.list_memory("x") == []
    assert texts(await nested.list_memory("x")) == ["kept tea"]
    assert len(await memory.list_memory("x")) == 1
    await memory.clear_all_memory()
    for user in users:
        assert await memory.list_memory(user) == []
        assert await memory.list_session_ids(user) == []
    assert texts(await nested.list_memory("x")) == ["kept tea"]
    assert [s.id for s in await sessions.list_sessions("x")] == ["s"]
    assert await states.export_state("x") == {"v": 1}
    for key in await services.keys():
        assert key.startswith(f"{services.prefix}:x:") or ":mem:" not in key
    await memory.add_memory("x", [text_message("new tea")])
    assert texts(await memory.search_memory("x", "tea")) == ["new tea"]


LARGE_ROUNDS = [MAX_ROUND_ID, MAX_ROUND_ID - 1, 2**52 + 1, 10**15 + 1, 10**14 + 3]


async def test_round_ids_up_to_the_largest_round_trip_exactly(services: Services) -> None:
    states = await services.states()
    for round_id in LARGE_ROUNDS:
        assert await states.save_state("u1", {"round": round_id}, round_id=round_id) == round_id
    assert await states.list_states("u1") == sorted(LARGE_ROUNDS)
    for round_id in LARGE_ROUNDS:
        assert await states.export_state("u1", round_id=round_id) == {"round": round_id}
    assert await states.export_state("u1") == {"round": MAX_ROUND_ID}
    await states.delete_state("u1", round_id=MAX_ROUND_ID)
    assert await states.export_state("u1") == {"round": MAX_ROUND_ID - 1}


async def test_automatic_rounds_stop_at_the_largest_round(services: Services) -> None:
    states, reference = await services.states(), InMemoryStateService()
    errors = []
    for service in (states, reference):
        assert await service.save_state("u1", {"v": 1}, round_id=MAX_ROUND_ID - 1) == (
            MAX_ROUND_ID - 1
        )
        assert await service.save_state("u1", {"v": 2}) == MAX_ROUND_ID
        with pytest.raises(InvalidArgumentError, match="round_id") as caught:
            await service.save_state("u1", {"v": 3})
        errors.append(str(caught.value))
        # Nothing was stored by the refused save.
        assert await service.list_states("u1") == [MAX_ROUND_ID - 1, MAX_ROUND_ID]
        assert await service.export_state("u1") == {"v": 2}
    assert errors[0] == errors[1]


async def test_state_sessions_are_listed_while_they_hold_rounds(services: Services) -> None:
    states = await services.states()
    for session in ["b", "*", "{c}", "a"]:
        await states.save_state("u1", {"v": session}, session_id=session)
    await states.save_state("u1", {"v": 1})
    await states.save_state("u2", {"v": 1}, session_id="other")
    assert await states.list_session_ids("u1") == ["*", "a", "b", "default", "{c}"]
    assert await states.list_session_ids("u2") == ["other"]
    await states.save_state("u1", {"v": 2}, session_id="a", round_id=7)
    await states.delete_state("u1", "a", round_id=1)
    assert "a" in await states.list_session_ids("u1")
    await states.delete_state("u1", "a", round_id=7)
    await states.delete_state("u1", "b")
    assert await states.list_session_ids("u1") == ["*", "default", "{c}"]
    for session in ["*", "default", "{c}"]:
        await states.delete_state("u1", session)
    await states.delete_state("u2", "other")
    assert await states.list_session_ids("u1") == []
    assert await services.keys() == []


async def test_memories_without_text_are_deleted_like_others(services: Services) -> None:
    memory = await services.memory()
    await memory.add_memory("u1", [text_message(""), text_message("tea")], "a")
    await memory.add_memory("u1", [text_message("")], "b")
    await memory.delete_memory("u1", "b")
    assert texts(await memory.list_memory("u1")) == ["", "tea"]
    await memory.delete_memory("u1", "a")
    assert await services.keys() == []
