"""Key layout, isolation of hostile ids, and expiry of the Redis backends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.crc import key_slot

from agentmem import (
    AudioContent,
    DataContent,
    FileContent,
    ImageContent,
    Message,
    RefusalContent,
    Session,
    TextContent,
)
from agentmem.errors import InvalidArgumentError
from agentmem.limits import MAX_ID_LENGTH
from agentmem.services._redis import RedisConnection, decode_id, encode_id
from tests.helpers import text_message, texts
from tests.redis.conftest import Services

HOSTILE = [
    "*",
    "?",
    "[a-z]",
    "alice:x",
    "alice*",
    "{alice}",
    "}{",
    "a{b}c",
    "ünï©ødé 🧠",
    "x" * MAX_ID_LENGTH,
]


@pytest.mark.parametrize("value", [*HOSTILE, "alice", "\ud800 lone surrogate"])
def test_ids_encode_reversibly_into_key_safe_text(value: str) -> None:
    encoded = encode_id(value)
    assert decode_id(encoded) == value
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("prefix", ["", "   ", "a{b", "c}", 5])
def test_key_prefix_is_checked(prefix: object) -> None:
    with pytest.raises(InvalidArgumentError, match="key_prefix"):
        RedisConnection(key_prefix=prefix)  # type: ignore[arg-type]


async def _write_everything(services: Services, user_id: str, session_id: str) -> None:
    memory, sessions, states = (
        await services.memory(),
        await services.sessions(),
        await services.states(),
    )
    await memory.add_memory(user_id, [text_message(f"tea of {user_id[:20]}")], session_id)
    await sessions.append_message(Session(id=session_id, user_id=user_id), text_message("hi"))
    await states.save_state(user_id, {"v": 1}, session_id=session_id)


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_every_key_of_a_user_carries_its_encoded_hash_tag(
    services: Services, hostile: str
) -> None:
    await _write_everything(services, hostile, hostile)
    await _write_everything(services, "alice", "s")
    keys = await services.keys()
    tags = {f"{{{encode_id(user)}}}": user for user in (hostile, "alice")}
    owners: dict[str, set[int]] = {}
    for key in keys:
        tag = key[key.index("{") : key.index("}") + 1]
        assert key.startswith(f"{services.prefix}:{tag}:")
        owners.setdefault(tags[tag], set()).add(key_slot(key.encode()))
    # All keys of one user share a slot, so every script is legal on a cluster.
    assert {user: len(slots) for user, slots in owners.items()} == {hostile: 1, "alice": 1}
    # No id appears raw in a key.
    assert not any(hostile in key.split(":", 1)[1] for key in keys if len(hostile) > 1)


@pytest.mark.parametrize("pattern", ["*", "alice*", "alic?", "[a]lice"])
async def test_glob_like_user_ids_list_only_their_own_sessions(
    services: Services, pattern: str
) -> None:
    sessions = await services.sessions()
    await sessions.create_session("alice", "a1")
    await sessions.create_session("alice:x", "ax1")
    await sessions.create_session(pattern, "mine")
    assert [s.id for s in await sessions.list_sessions("alice")] == ["a1"]
    assert [s.id for s in await sessions.list_sessions("alice:x")] == ["ax1"]
    assert [s.id for s in await sessions.list_sessions(pattern)] == ["mine"]


async def test_deleting_everything_leaves_no_key(services: Services) -> None:
    memory, sessions, states = (
        await services.memory(),
        await services.sessions(),
        await services.states(),
    )
    await _write_everything(services, "u1", "s1")
    await memory.add_memory("u1", [text_message("more tea")], "s2")
    await memory.delete_memory("u1", "s1")
    await memory.delete_memory("u1", "s2")
    await sessions.delete_session("u1", "s1")
    await states.delete_state("u1", "s1")
    assert await services.keys() == []


# Per kind of service: a write, then the reads that count as use of the data.
Use = Callable[[Any], Awaitable[object]]
USES: dict[str, tuple[Use, list[Use]]] = {
    "memory": (
        lambda memory: memory.add_memory("u1", [text_message("tea")], "s1"),
        [
            lambda memory: memory.search_memory("u1", "tea"),
            lambda memory: memory.list_memory("u1"),
            lambda memory: memory.list_session_ids("u1"),
        ],
    ),
    "sessions": (
        lambda sessions: sessions.append_message(
            Session(id="s1", user_id="u1"), text_message("hi")
        ),
        [lambda sessions: sessions.get_session("u1", "s1")],
    ),
    "states": (
        lambda states: states.save_state("u1", {"v": 1}, session_id="s1"),
        [
            lambda states: states.export_state("u1", "s1"),
            lambda states: states.list_states("u1", "s1"),
        ],
    ),
}


async def _service(services: Services, kind: str, **options: Any) -> Any:
    made: Any = await getattr(services, kind)(**options)
    return made


async def _ttls(services: Services) -> list[int]:
    return [await services.raw.pttl(key) for key in await services.keys()]


@pytest.mark.parametrize("kind", sorted(USES))
async def test_by_default_nothing_expires(services: Services, kind: str) -> None:
    service = await _service(services, kind)
    assert service.ttl_seconds is None
    write, _ = USES[kind]
    await write(service)
    ttls = await _ttls(services)
    assert ttls
    assert set(ttls) == {-1}


@pytest.mark.parametrize("kind", sorted(USES))
async def test_with_ttl_seconds_every_key_expires_together(services: Services, kind: str) -> None:
    service = await _service(services, kind, ttl_seconds=100)
    write, _ = USES[kind]
    await write(service)
    ttls = await _ttls(services)
    assert ttls
    assert all(95_000 < ttl <= 100_000 for ttl in ttls)


@pytest.mark.parametrize("kind", sorted(USES))
async def test_reads_refresh_the_expiry(services: Services, kind: str) -> None:
    service = await _service(services, kind, ttl_seconds=100)
    write, reads = USES[kind]
    await write(service)
    for read in reads:
        for key in await services.keys():
            await services.raw.pexpire(key, 5_000)
        await read(service)
        assert all(ttl > 95_000 for ttl in await _ttls(services))


async def test_every_memory_key_of_a_user_expires_together(services: Services) -> None:
    memory = await services.memory(ttl_seconds=100)
    await memory.add_memory("u1", [text_message("tea")], "s1")
    await memory.add_memory("u1", [text_message("cake")], "s2")
    keys = await services.keys()
    ttls = [await services.raw.pttl(key) for key in keys]
    assert len(keys) >= 6
    assert max(ttls) - min(ttls) < 1000


async def test_expired_memories_and_their_index_go_together(services: Services) -> None:
    memory = await services.memory(ttl_seconds=1)
    await memory.add_memory("u1", [text_message("tea")])
    assert texts(await memory.search_memory("u1", "tea")) == ["tea"]
    await asyncio.sleep(1.2)
    assert await memory.search_memory("u1", "tea") == []
    assert await memory.list_memory("u1") == []
    await memory.add_memory("u1", [text_message("new tea")])
    hits = await memory.search_memory_hits("u1", "tea")
    assert [hit.message.get_text_content() for hit in hits] == ["new tea"]


async def test_an_expired_session_is_not_listed_and_an_append_starts_it_anew(
    services: Services,
) -> None:
    sessions = await services.sessions(ttl_seconds=1)
    await sessions.append_message(Session(id="old", user_id="u1"), text_message("before"))
    await sessions.create_session("u1", "kept")
    await asyncio.sleep(0.6)
    await sessions.get_session("u1", "kept")  # a read keeps "kept" alive
    await asyncio.sleep(0.6)
    assert [s.id for s in await sessions.list_sessions("u1")] == ["kept"]
    assert (await sessions.get_session("u1", "old")).messages == []
    await sessions.append_message(Session(id="old", user_id="u1"), text_message("after"))
    assert texts((await sessions.get_session("u1", "old")).messages) == ["after"]
    assert [s.id for s in await sessions.list_sessions("u1")] == ["kept", "old"]


async def test_states_expire_per_session(services: Services) -> None:
    states = await services.states(ttl_seconds=1)
    await states.save_state("u1", {"v": 1}, session_id="s")
    await states.save_state("u1", {"v": 1}, session_id="kept")
    await asyncio.sleep(0.6)
    await states.export_state("u1", "kept")  # a read keeps "kept" alive
    await asyncio.sleep(0.6)
    assert await states.list_states("u1", "s") == []
    assert await states.list_session_ids("u1") == ["kept"]
    assert await states.save_state("u1", {"v": 2}, session_id="s") == 1
    assert await states.list_session_ids("u1") == ["kept", "s"]


async def test_max_messages_per_session_trims_atomically(services: Services) -> None:
    sessions = await services.sessions(max_messages_per_session=3)
    memory = await services.memory(max_messages_per_session=3)
    session = await sessions.create_session("u1", "s")
    for i in range(5):
        await sessions.append_message(session, text_message(f"m{i} tea"))
        await memory.add_memory("u1", [text_message(f"m{i} tea")], "s")
    await memory.add_memory("u1", [text_message("other tea")], "t")
    assert texts((await sessions.get_session("u1", "s")).messages) == ["m2 tea", "m3 tea", "m4 tea"]
    assert texts(await memory.list_memory("u1", {"session_id": "s"})) == [
        "m2 tea",
        "m3 tea",
        "m4 tea",
    ]
    found = texts(await memory.search_memory("u1", "tea"))
    assert sorted(found) == ["m2 tea", "m3 tea", "m4 tea", "other tea"]


async def test_every_kind_of_message_survives_compact_storage(services: Services) -> None:
    memory = await services.memory()
    message = Message(
        role="assistant",
        status="completed",
        content=[
            TextContent(text="tea", delta=None, index=0),
            DataContent(data={"k": None, "n": [1, 2]}),
            ImageContent(image_url="https://example.com/a.png"),
            AudioContent(data="AAAA", format="wav"),
            FileContent(filename="notes.txt", file_id=None),
            RefusalContent(refusal="no"),
        ],
        metadata={"source": None},
        usage={"tokens": 3},
        custom_field=None,
    )
    await memory.add_memory("u1", [message, Message(role="user", content=[])])
    stored = await memory.list_memory("u1")
    assert [m.model_dump() for m in stored] == [
        message.model_dump(),
        Message(id=stored[1].id, role="user", content=[]).model_dump(),
    ]
