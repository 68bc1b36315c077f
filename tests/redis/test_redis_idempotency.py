"""Every Redis write is idempotent: sent twice, retried by the caller, or cut off halfway.

redis-py sends a command again when its reply times out, and Redis runs both copies; a
caller retries a call that raised although it may have been applied. These tests run
each write twice, retry calls whose reply was lost, and cut writes in steps between
steps, and compare what is stored with the in-memory backends given the same calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentmem import (
    BackendError,
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    MemoryService,
    Message,
    RedisMemoryService,
    Session,
)
from agentmem.services._redis import RedisServiceBase, encode_id, text
from agentmem.services.memory.redis.codec import Postings
from agentmem.services.memory.redis.writes import STEP_TERMS
from tests.helpers import text_message, texts
from tests.redis.conftest import Services

QUERIES = ["tea", "lemon", "w7", "green tea w3", "cake"]
Script = Callable[[str, Sequence[str], Sequence[Any]], Awaitable[Any]]


def _words(count: int, tag: str) -> str:
    """``count`` distinct words, each its own index term."""
    return " ".join(f"{tag}{number}" for number in range(count))


def _large(tag: str) -> Message:
    """A memory of more index terms than one script takes: it is written in steps."""
    return text_message(f"tea {_words(STEP_TERMS + 100, tag)}")


def _resend_everything(monkeypatch: pytest.MonkeyPatch, service: RedisServiceBase) -> None:
    """Make ``service`` send every script and transaction twice, as redis-py does when a
    reply times out; the second reply is the one used."""
    run_script, transaction = service.run_script, service.transaction

    async def run_twice(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        await run_script(name, keys, args)
        return await run_script(name, keys, args)

    async def transaction_twice(
        commands: Sequence[Sequence[Any]], name: str, keys: Sequence[str], args: Sequence[Any]
    ) -> list[Any]:
        await transaction(commands, name, keys, args)
        return await transaction(commands, name, keys, args)

    monkeypatch.setattr(service, "run_script", run_twice)
    monkeypatch.setattr(service, "transaction", transaction_twice)


def _on_script(
    monkeypatch: pytest.MonkeyPatch,
    service: RedisServiceBase,
    hook: Callable[[str, Script, Sequence[str], Sequence[Any]], Awaitable[Any]],
) -> None:
    """Route every script ``service`` runs through ``hook(name, run, keys, args)``."""
    run_script = service.run_script

    async def hooked(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await hook(name, run_script, keys, args)

    monkeypatch.setattr(service, "run_script", hooked)


async def _results(memory: MemoryService, user_id: str = "u1") -> list[Any]:
    found: list[Any] = [
        [
            (record.message.id, record.session_id)
            for record in await memory.list_memory_records(user_id, {"page_size": 1000})
        ]
    ]
    for query in QUERIES:
        hits = await memory.search_memory_hits(user_id, query)
        found.append([(hit.message.id, hit.score) for hit in hits])
    return found


async def test_writes_sent_twice_are_stored_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, sessions, states = (
        await services.memory(),
        await services.sessions(),
        await services.states(),
    )
    for service in (memory, sessions, states):
        _resend_everything(monkeypatch, service)
    memories = InMemoryMemoryService()
    small = [text_message("tea with lemon"), text_message("green tea w3")]
    large = [_large("w"), text_message("cake")]
    other = _large("x")
    for service in (memory, memories):
        await service.add_memory("u1", small, "s1")
        await service.add_memory("u1", large, "s2")
        await service.add_memory("u1", [other], "s3")
    assert await _results(memory) == await _results(memories)
    for service in (memory, memories):
        await service.delete_memory("u1", "s2")
    assert await _results(memory) == await _results(memories)
    await _check_postings(services, memory, "u1")

    history = InMemorySessionHistoryService()
    long = text_message("x" * 300_000)  # appended as a plain RPUSH in a transaction
    for service in (sessions, history):
        session = Session(id="s", user_id="u1")
        await service.append_message(session, small)
        await service.append_message(session, [long])
        await service.append_message(session, [text_message("after")])
    stored = await sessions.get_session("u1", "s")
    assert [m.id for m in stored.messages] == [
        *(m.id for m in small),
        long.id,
        stored.messages[-1].id,
    ]
    assert texts(stored.messages) == texts((await history.get_session("u1", "s")).messages)

    saved = [await states.save_state("u1", {"n": n}) for n in range(3)]
    saved.append(await states.save_state("u1", {"large": "y" * 300_000}))
    saved.append(await states.save_state("u1", {"n": 9}, round_id=2))
    assert saved == [1, 2, 3, 4, 2]
    assert await states.list_states("u1") == [1, 2, 3, 4]
    assert await states.export_state("u1", round_id=4) == {"large": "y" * 300_000}
    assert await states.export_state("u1", round_id=2) == {"n": 9}


async def test_a_retry_with_the_same_messages_stores_nothing_new(services: Services) -> None:
    memory, sessions = await services.memory(), await services.sessions()
    first, second, third = text_message("tea"), text_message("lemon tea"), text_message("cake")
    large = _large("w")
    await memory.add_memory("u1", [first, second], "s")
    await memory.add_memory("u1", [first, second], "s")
    await memory.add_memory("u1", [large, third], "s")
    await memory.add_memory("u1", [large, third], "s")
    await memory.add_memory("u1", [third, third], "t")
    # A message id is stored once per session; another session may hold it too.
    records = await memory.list_memory_records("u1", {"page_size": 1000})
    assert [(r.message.id, r.session_id) for r in records] == [
        (first.id, "s"),
        (second.id, "s"),
        (large.id, "s"),
        (third.id, "s"),
        (third.id, "t"),
    ]
    assert len(await memory.search_memory("u1", "tea")) == 3

    session = Session(id="s", user_id="u1")
    await sessions.append_message(session, [first, second])
    await sessions.append_message(session, [second, third, third])
    stored = await sessions.get_session("u1", "s")
    assert [m.id for m in stored.messages] == [first.id, second.id, third.id]


async def test_a_save_that_raised_is_retried_into_its_first_round(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = await services.states()
    outcomes = iter(["applied", "not applied"])

    async def reply_lost(name: str, run: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # The script runs (or not) and its reply never comes: redis-py gives up.
        if name == "save":
            if next(outcomes, None) == "applied":
                await run(name, keys, args)
                raise RedisTimeoutError("timed out")
            if args[3] == '{"n":2}':
                raise RedisTimeoutError("timed out")
        return await run(name, keys, args)

    _on_script(monkeypatch, states, reply_lost)
    with pytest.raises(BackendError):
        await states.save_state("u1", {"n": 1})
    assert await states.save_state("u1", {"n": 1}) == 1
    with pytest.raises(BackendError):
        await states.save_state("u1", {"n": 2})
    monkeypatch.undo()
    assert await states.save_state("u1", {"n": 2}) == 2
    assert await states.list_states("u1") == [1, 2]
    # The same state saved again after success is a new save.
    assert await states.save_state("u1", {"n": 2}) == 3


async def test_a_large_save_that_raised_is_retried_into_its_first_round(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = await services.states()
    transaction = states.transaction
    lost = [True]

    async def reply_lost(
        commands: Sequence[Sequence[Any]], name: str, keys: Sequence[str], args: Sequence[Any]
    ) -> list[Any]:
        # The first transaction runs and its reply never comes.
        replies: list[Any] = await transaction(commands, name, keys, args)
        if lost:
            lost.pop()
            raise RedisTimeoutError("timed out")
        return replies

    monkeypatch.setattr(states, "transaction", reply_lost)
    large = {"large": "z" * 300_000}
    with pytest.raises(BackendError):
        await states.save_state("u1", large, "s")
    assert await states.save_state("u1", large, "s") == 1
    assert await states.list_states("u1", "s") == [1]
    assert await states.export_state("u1", "s") == large
    # The states hash holds the round and one copy of its JSON, nothing left over.
    hash_key = f"{services.prefix}:{{{encode_id('u1')}}}:state:states:{encode_id('s')}"
    assert await services.raw.hlen(hash_key) == 2


async def _pending(services: Services, memory: RedisMemoryService, user_id: str) -> dict[str, str]:
    raw = await services.raw.hgetall(memory.user_keys(user_id).pending)
    return {text(field): text(value) for field, value in raw.items()}


async def _abandon(services: Services, memory: RedisMemoryService, user_id: str) -> None:
    """Make the user's pending work look untouched for long: as if its writer died."""
    keys = memory.user_keys(user_id)
    for field, value in (await _pending(services, memory, user_id)).items():
        if field.startswith("w:"):
            await services.raw.hset(keys.pending, field, value.rsplit(" ", 1)[0] + " 0")
    await services.raw.hset(keys.meta, "work_at", 0)


async def test_a_write_in_steps_that_raised_is_hidden_and_a_retry_completes_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, reference = await services.memory(), InMemoryMemoryService()
    before = [text_message("tea with lemon"), text_message("cake w7")]
    for service in (memory, reference):
        await service.add_memory("u1", before, "s1")
    expected_before = await _results(reference)
    batch = [_large("w"), text_message("green tea w3")]
    committed = [False]

    async def commit_lost(name: str, run: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if name == "commit" and not committed[0]:
            committed[0] = True
            raise RedisTimeoutError("timed out")
        return await run(name, keys, args)

    _on_script(monkeypatch, memory, commit_lost)
    with pytest.raises(BackendError):
        await memory.add_memory("u1", batch, "s2")
    # Stored up to the commit, and invisible: searches and pages show nothing of it.
    assert [field[:2] for field in await _pending(services, memory, "u1")] == ["w:"]
    assert await _results(memory) == expected_before
    await memory.add_memory("u1", batch, "s2")
    await reference.add_memory("u1", batch, "s2")
    assert await _results(memory) == await _results(reference)

    # The next writer after a minute of no progress undoes the abandoned write.
    await _abandon(services, memory, "u1")
    more = text_message("more tea")
    await memory.add_memory("u1", [more], "s3")
    await reference.add_memory("u1", [more], "s3")
    assert await _results(memory) == await _results(reference)
    await _check_postings(services, memory, "u1")


async def test_searches_between_steps_see_all_of_a_write_or_nothing(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, reference = await services.memory(), InMemoryMemoryService()
    first = [text_message("tea w1"), text_message("lemon")]
    for service in (memory, reference):
        await service.add_memory("u1", first, "s1")
    seen: list[tuple[str, list[Any]]] = []

    async def search_after(name: str, run: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        reply = await run(name, keys, args)
        if name in {"begin", "stage", "index", "purge"}:
            seen.append((name, await _results(unhooked)))
        return reply

    unhooked = await services.memory()
    _on_script(monkeypatch, memory, search_after)
    expected = [await _results(reference)]
    batch = [_large("w"), _large("x"), text_message("cake tea")]
    await memory.add_memory("u1", batch, "s2")
    await reference.add_memory("u1", batch, "s2")
    expected.append(await _results(reference))
    assert {name for name, _ in seen} == {"begin", "stage", "index"}
    assert all(found == expected[0] for _, found in seen)
    assert await _results(memory) == expected[1]

    seen.clear()
    await memory.delete_memory("u1", "s2")
    await reference.delete_memory("u1", "s2")
    assert [name for name, _ in seen][:1] == ["purge"]
    after = await _results(reference)
    assert all(found == after for _, found in seen)
    assert await _pending(services, memory, "u1") == {}
    await _check_postings(services, memory, "u1")


async def test_postings_stay_in_order_when_later_writes_end_first(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small writes between the steps of large ones take later doc ids but end first:
    # the large writes' postings must go before theirs.
    memory, other = await services.memory(), await services.memory()
    vocabulary = [f"v{number}" for number in range(40)]
    large = [
        text_message(" ".join(vocabulary) + " " + _words(STEP_TERMS + 50, f"l{n}x"))
        for n in range(3)
    ]
    small = iter([text_message(" ".join(vocabulary[n % 7 :: 5])) for n in range(60)])
    written: list[Message] = []

    async def write_between(
        name: str, run: Script, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        reply = await run(name, keys, args)
        if name in {"begin", "stage", "index"}:
            for message in [next(small, None) for _ in range(3)]:
                if message is not None:
                    await other.add_memory("u1", [message], f"s{len(written) % 4}")
                    written.append(message)
        return reply

    _on_script(monkeypatch, memory, write_between)
    await asyncio.gather(*(memory.add_memory("u1", [message], "big") for message in large))
    records = await memory.list_memory_records("u1", {"page_size": 1000})
    assert {r.message.id for r in records} == {m.id for m in large + written}
    # Small writes, all made while a large one was pending, took doc ids above it.
    sessions = [record.session_id for record in records]
    assert sessions.index("big") < max(n for n, session in enumerate(sessions) if session != "big")
    for term in ("v3", "v10", "l1x7"):
        holding = [m for m in large + written if term in (m.get_text_content() or "").split()]
        hits = await memory.search_memory("u1", term, {"top_k": 1000})
        assert {hit.id for hit in hits} == {m.id for m in holding}
    await _check_postings(services, memory, "u1")
    await memory.delete_memory("u1", "big")
    await _check_postings(services, memory, "u1")


async def _check_postings(services: Services, memory: RedisMemoryService, user_id: str) -> None:
    """Nothing is pending, every message is indexed, and every posting list holds exactly
    the stored memories holding its term, in doc id order."""
    keys = memory.user_keys(user_id)
    raw: Any = services.raw
    assert await raw.hlen(keys.pending) == 0
    older: dict[str, bytes] = {}
    newest: dict[str, bytes] = {}
    for field, value in (await raw.hgetall(keys.terms)).items():
        name = text(field)
        if name.endswith("\t"):
            newest[name[:-1]] = value
        else:
            older[name] = value
    found = set()
    for term in older.keys() | newest.keys():
        ids = list(Postings(older.get(term, b"") + newest.get(term, b"")))
        assert ids == sorted(set(ids)), term
        found |= {(term, doc_id) for doc_id in ids}
    expected = set()
    indexed = set()
    for entry in await raw.zrange(keys.order, 0, -1):
        doc_id, _, _, _, held = text(entry).split("\t")[:5]
        indexed.add(int(doc_id))
        if held.startswith("+"):
            names = [f"{doc_id}:{chunk}" for chunk in range(int(held[1:]))]
            held = " ".join(text(chunk) for chunk in await raw.hmget(keys.doc_terms, names))
        expected |= {(term, int(doc_id)) for term in held.split()}
    assert found == expected
    assert {int(text(doc_id)) for doc_id in await raw.hkeys(keys.docs)} == indexed


async def test_a_session_kept_to_its_newest_memories_through_writes_in_steps(
    services: Services,
) -> None:
    memory = await services.memory(max_messages_per_session=3)
    older = [text_message("tea w1"), text_message("lemon w2")]
    batch = [_large("x"), text_message("green tea"), _large("y")]
    await memory.add_memory("u1", older, "s")
    # Written in steps; the commit trims the session, purging the older memories.
    await memory.add_memory("u1", batch, "s")
    reference = InMemoryMemoryService()
    await reference.add_memory("u1", batch, "s")
    assert await _results(memory) == await _results(reference)
    await _check_postings(services, memory, "u1")
    # One script trims large memories written in steps: their postings go in steps.
    newer = [text_message("tea w3"), text_message("cake w4")]
    await memory.add_memory("u1", newer, "s")
    reference = InMemoryMemoryService()
    await reference.add_memory("u1", [batch[2], *newer], "s")
    assert await _results(memory) == await _results(reference)
    await _check_postings(services, memory, "u1")
