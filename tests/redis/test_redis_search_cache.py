"""What searches keep in the process: always current, whoever wrote, and bounded.

Every search compares with the in-memory backend fed the same writes: a cache that served
anything stale would change an id, an order or a score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from agentmem import InMemoryMemoryService, MemoryService, RedisMemoryService
from agentmem.search.ranking import query_terms
from agentmem.services.memory.redis.search_cache import DataVersion, SearchCache, UserCache
from agentmem.services.memory.redis.writes import STEP_TERMS
from tests.helpers import text_message
from tests.redis.conftest import Services
from tests.redis.search_corpus import FILTERS, QUERIES, chat, fill, other_words, results

Hits = list[tuple[str, float, str]]


async def _hits(service: MemoryService, query: str, **filters: Any) -> Hits:
    found = await service.search_memory_hits("u1", query, filters)
    return [(hit.message.id, hit.score, hit.session_id) for hit in found]


def _scripts_run(monkeypatch: pytest.MonkeyPatch, service: RedisMemoryService) -> list[str]:
    """The names of the scripts ``service`` runs from now on, as they run."""
    names: list[str] = []
    run_script = service.run_script

    async def counted(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        names.append(name)
        return await run_script(name, keys, args)

    monkeypatch.setattr(service, "run_script", counted)
    return names


async def test_a_search_that_finds_its_cache_current_makes_one_round_trip(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, memory = InMemoryMemoryService(), await services.memory()
    batches = chat(1)
    await fill(reference, batches)
    await fill(memory, batches)
    expected = await results(reference)
    assert await results(memory) == expected
    scripts = _scripts_run(monkeypatch, memory)
    exchanges = 0
    redis = memory.redis

    def counted() -> Any:
        nonlocal exchanges
        exchanges += 1
        return redis()

    monkeypatch.setattr(memory, "redis", counted)
    assert await results(memory) == expected
    # One script per search of a query with terms (the postings, which tell whether
    # anything changed), and no other exchange with Redis.
    searches = sum(1 for query in QUERIES if query_terms(query)) * len(FILTERS)
    assert scripts == ["postings"] * searches
    assert exchanges == searches


@pytest.mark.parametrize("budget", [0, 10_000, 8 << 20])
async def test_a_search_reads_nothing_twice_whatever_the_cache_keeps(
    services: Services, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    reference = InMemoryMemoryService()
    memory = await services.memory(search_cache_user_bytes=budget)
    batches = chat(4, batches_count=100)
    await fill(reference, batches)
    await fill(memory, batches)
    scripts = _scripts_run(monkeypatch, memory)
    for query in ["tea coffee", "painting sunrise lake sweater"]:
        expected = await _hits(reference, query, top_k=100)
        scripts.clear()
        assert await _hits(memory, query, top_k=100) == expected
        assert len(scripts) == len(set(scripts)), scripts


async def test_after_an_addition_a_search_reads_only_the_postings_added(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory()
    first = [text_message(f"tea w{number}") for number in range(100)]
    added = text_message("more tea")
    for service in (reference, writer):
        await service.add_memory("u1", first, "s")
    assert await _hits(reader, "tea") == await _hits(reference, "tea")
    for service in (reference, writer):
        await service.add_memory("u1", [added], "s")
    replies: list[Any] = []
    run_script = reader.run_script

    async def kept(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        reply = await run_script(name, keys, args)
        if name == "postings":
            replies.append(reply)
        return reply

    monkeypatch.setattr(reader, "run_script", kept)
    assert await _hits(reader, "tea") == await _hits(reference, "tea")
    # After the version, counts and pending work: the term's postings above doc id 100,
    # older and newest: the one added, 8 base64 digits.
    [reply] = replies
    assert int(reply[6]) == 100
    assert len(reply[7]) + len(reply[8]) == 8


@pytest.mark.parametrize(
    "options",
    # A tight budget evicts most of what a search reads before the next one.
    [{}, {"search_cache_user_bytes": 10_000}],
    ids=["default", "tight"],
)
async def test_searches_follow_the_writes_of_another_service(
    services: Services, options: dict[str, int]
) -> None:
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory(**options)
    batches = chat(5)
    half = len(batches) // 2

    async def both(action: Callable[[MemoryService], Awaitable[Any]]) -> None:
        for service in (reference, writer):
            await action(service)

    async def same() -> None:
        # Twice: the second from what the first kept.
        expected = await results(reference)
        assert await results(reader) == expected
        assert await results(reader) == expected

    await both(lambda service: fill(service, batches[:half]))
    await same()
    # Memories added: the reader reads only the postings added since.
    await both(lambda service: fill(service, batches[half:]))
    await same()
    # A removal empties the reader's cache of the user.
    await both(lambda service: service.delete_memory("u1", "session 2"))
    await same()
    # The user's data made anew, with as many memories and the same doc ids, but other
    # words: only the new epoch tells the reader.
    await both(lambda service: service.delete_memory("u1"))
    renamed = other_words(batches)
    await both(lambda service: fill(service, renamed))
    await same()
    # And again with the very same messages and ids.
    await both(lambda service: service.delete_memory("u1"))
    await both(lambda service: fill(service, batches))
    await same()
    # Every memory deleted, then one added.
    await both(lambda service: service.delete_memory("u1"))
    await same()
    tea = text_message("tea")
    await both(lambda service: service.add_memory("u1", [tea], "session 1"))
    await same()


async def test_context_added_next_to_a_cached_memory_counts(services: Services) -> None:
    # The last memory of a session has neighbours on one side only, until the session
    # grows: a search must see the memories that join them.
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory()
    first = [text_message("tea by the lake"), text_message("coffee"), text_message("tea")]
    joining, elsewhere, last = (text_message(t) for t in ("the lake at sunrise", "a lake", "lake"))
    for service in (reference, writer):
        await service.add_memory("u1", first, "s")
    before = await _hits(reader, "tea lake")
    assert before == await _hits(reference, "tea lake")
    for service in (reference, writer):
        await service.add_memory("u1", [joining], "s")
        await service.add_memory("u1", [elsewhere], "t")
    after = await _hits(reader, "tea lake")
    assert after == await _hits(reference, "tea lake")
    assert after != before
    for service in (reference, writer):
        await service.add_memory("u1", [last], "s")
    assert await _hits(reader, "tea lake") == await _hits(reference, "tea lake")


async def test_a_memory_added_next_to_a_cached_one_lends_it_context(services: Services) -> None:
    # "tea" is common (held by more than 256 memories and a quarter of them), so only
    # the memory holding "lake", and its neighbours, are scored. A "tea" added right
    # after it is reached only through its neighbours, which grew since they were read.
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory()
    common = [text_message("tea") for _ in range(300)]
    own = [text_message("coffee"), text_message("lake")]
    added = text_message("tea")
    for service in (reference, writer):
        await service.add_memory("u1", common, "other")
        await service.add_memory("u1", own, "s")
    before = await _hits(reader, "lake tea")
    assert before == await _hits(reference, "lake tea")
    for service in (reference, writer):
        await service.add_memory("u1", [added], "s")
    after = await _hits(reader, "lake tea")
    assert after == await _hits(reference, "lake tea")
    assert added.id in [hit[0] for hit in after]


async def test_postings_added_since_are_found_where_they_moved(services: Services) -> None:
    # A term's newest postings join its older ones once they pass 4 KB (512 postings,
    # here at the 11th batch of 50): those added since a search may then be in either.
    reference, writer = InMemoryMemoryService(), await services.memory()
    # Readers searching after the batches of these numbers.
    readers = {(4, 9, 10, 11): await services.memory(), (4, 11): await services.memory()}
    filters = {"top_k": 1000}
    for batch in range(12):
        messages = [text_message(f"tea w{batch}x{number}") for number in range(50)]
        for service in (reference, writer):
            await service.add_memory("u1", messages, f"s{batch % 3}")
        expected = await _hits(reference, "tea", **filters)
        for batches, reader in readers.items():
            if batch in batches:
                assert await _hits(reader, "tea", **filters) == expected


async def test_postings_too_many_for_a_dict_stay_packed_and_current(
    services: Services,
) -> None:
    # Postings read again become a dict when the budget has room for one: not those of
    # a term that 1,000 memories hold, in 200 KB.
    reference, writer = InMemoryMemoryService(), await services.memory()
    reader = await services.memory(search_cache_user_bytes=200_000)
    for batch in range(22):
        messages = [text_message(f"tea w{batch}x{number}") for number in range(50)]
        for service in (reference, writer):
            await service.add_memory("u1", messages, f"s{batch % 3}")
        if batch >= 19:
            assert await _hits(reader, "tea w3x1") == await _hits(reference, "tea w3x1")


async def test_trimmed_sessions_reach_a_warm_cache(services: Services) -> None:
    # The in-memory backend does not trim sessions: a service that keeps nothing between
    # searches tells what a warm cache must return.
    writer = await services.memory(max_messages_per_session=12)
    reader, cold = await services.memory(), await services.memory(search_cache_users=0)
    batches = chat(7, batches_count=60)
    await fill(writer, batches[:30])
    assert await results(reader) == await results(cold)
    # Each add removes the oldest memories of its session.
    await fill(writer, batches[30:])
    kept = await writer.list_memory("u1", {"session_id": "session 1", "page_size": 100})
    assert len(kept) == 12
    assert await results(reader) == await results(cold)
    # More than one script takes, so written in steps, and trimmed in steps.
    large = [text_message(f"tea lake w{number} " * 3) for number in range(STEP_TERMS + 10)]
    await writer.add_memory("u1", large, "session 1")
    assert await results(reader) == await results(cold)


async def test_a_write_in_steps_stays_invisible_until_it_ends(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = InMemoryMemoryService()
    writer = await services.memory()
    # ``early`` searches after every step, ``late`` only once all are done but the
    # last: it then finds every posting of the write among those added since it last
    # searched, and must ignore them.
    early, late = await services.memory(), await services.memory()
    batches = chat(8)
    await fill(reference, batches)
    await fill(writer, batches)
    before = await results(reference)
    assert await results(early) == before
    assert await results(late) == before
    seen: list[str] = []
    run_script = writer.run_script

    async def checked(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if name == "commit":
            assert await results(late) == before
        reply = await run_script(name, keys, args)
        seen.append(name)
        if name in ("begin", "stage", "index"):
            assert await results(early) == before
        return reply

    monkeypatch.setattr(writer, "run_script", checked)
    large = [text_message(f"tea lake garden w{number}") for number in range(STEP_TERMS)]
    for service in (reference, writer):
        await service.add_memory("u1", large, "session 2")
    assert {"begin", "stage", "index", "commit"} <= set(seen)
    expected = await results(reference)
    assert await results(early) == expected
    assert await results(late) == expected


async def test_data_without_an_epoch_is_read_anew(services: Services) -> None:
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory()
    batches = chat(9)
    await fill(reference, batches)
    await fill(writer, batches)
    [meta] = writer.keys.user("u1", "mem:meta")
    await services.raw.hdel(meta, "epoch")
    assert await results(reader) == await results(reference)
    added = text_message("tea by the lake")
    for service in (reference, writer):
        await service.add_memory("u1", [added], "session 1")
    assert await results(reader) == await results(reference)


async def test_concurrent_searches_and_writes_end_equal(services: Services) -> None:
    reference = InMemoryMemoryService()
    writer, reader = await services.memory(), await services.memory()
    batches = chat(11, batches_count=60)
    await fill(reference, batches[:20])
    await fill(writer, batches[:20])

    async def search_meanwhile() -> None:
        for _ in range(3):
            await asyncio.gather(*(results(reader) for _ in range(3)))

    await asyncio.gather(fill(writer, batches[20:]), search_meanwhile())
    await fill(reference, batches[20:])
    assert await results(reader) == await results(reference)


@pytest.mark.parametrize(
    "options",
    [
        {"search_cache_users": 0},
        {"search_cache_users": 1},
        {"search_cache_user_bytes": 20_000},
        {"search_cache_user_bytes": 0},
    ],
    ids=["no-users", "one-user", "small", "nothing"],
)
async def test_small_or_no_caches_return_the_same(
    services: Services, options: dict[str, int]
) -> None:
    reference, writer = InMemoryMemoryService(), await services.memory()
    reader = await services.memory(**options)
    for number, user in enumerate(["ann", "bob"]):
        for session, messages in chat(20 + number, batches_count=20):
            for service in (reference, writer):
                await service.add_memory(user, messages, session_id=session)
    for _ in range(2):
        for user in ["ann", "bob"]:
            for query in ["tea by the lake", "piano teacher", "cake"]:
                expected = await reference.search_memory_hits(user, query, {"top_k": 5})
                found = await reader.search_memory_hits(user, query, {"top_k": 5})
                assert [(h.message.id, h.score) for h in found] == [
                    (h.message.id, h.score) for h in expected
                ]


@pytest.mark.parametrize("option", ["search_cache_users", "search_cache_user_bytes"])
@pytest.mark.parametrize("value", [-1, True, 1.5])
def test_cache_sizes_are_checked(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        RedisMemoryService(**{option: value})


async def test_hits_are_copies_of_what_is_cached(services: Services) -> None:
    memory = await services.memory()
    noted = text_message("tea by the lake", metadata={"speaker": "ann", "notes": "n" * 2000})
    await memory.add_memory("u1", [noted, text_message("tea", metadata={"speaker": "bob"})])
    for _ in range(2):
        hits = await memory.search_memory_hits("u1", "tea", {"metadata": {"speaker": "ann"}})
        assert [hit.message.id for hit in hits] == [noted.id]
        # What the caller does with its hits does not reach the next search.
        metadata = hits[0].message.metadata
        assert metadata is not None
        metadata["speaker"] = "bob"
        hits[0].message.content = []


def _version(next_id: int, removed: str = "0", epoch: str = "e") -> DataVersion:
    return DataVersion(epoch, removed, next_id)


def test_a_user_cache_stays_within_its_budget() -> None:
    cache = UserCache(_version(1), budget=10_000)
    for key in range(1000):
        cache.keep("docs", [(key, key, 100)])
    # Two generations of at most half the budget each: at most the newest 100 items.
    kept = cache.found("docs", range(1000))
    assert 50 <= len(kept) <= 100
    assert min(kept) >= 900
    # An item costing more than half the budget is never kept.
    cache.keep("postings", [("big", "x", 5_001)])
    assert cache.found("postings", ["big"]) == {}


def test_what_searches_keep_reading_stays() -> None:
    cache = UserCache(_version(1), budget=10_000)
    cache.keep("docs", [("hot", "value", 100)])
    for key in range(1000):
        cache.keep("docs", [(key, key, 100)])
        assert cache.found("docs", ["hot"]) == {"hot": "value"}


def test_what_holds_at_one_state_alone_ends_with_it() -> None:
    cache = UserCache(_version(5), budget=10_000)
    cache.keep("near", [(1, (2, 3), 100)], at=5)
    cache.keep("near", [(2, (1,), 100)])
    # Kept only at the state it was read at.
    cache.keep("near", [(3, (4,), 100)], at=4)
    assert cache.found("near", [1, 2, 3]) == {1: (2, 3), 2: (1,)}
    cache.advance(6)
    assert cache.found("near", [1, 2]) == {2: (1,)}
    cache.advance(5)
    assert cache.next_id == 6


def test_a_search_cache_keeps_its_most_recent_users_while_their_data_stands() -> None:
    cache = SearchCache(users=2, user_bytes=10_000)
    ann = cache.validated("ann", _version(3))
    ann.keep("docs", [(1, "info", 100)])
    assert cache.peek("ann") is ann
    # Memories added: the same cache, current at the higher next_id.
    assert cache.validated("ann", _version(4)) is ann
    assert ann.next_id == 4
    # A removal, or the data made anew: a new, empty cache.
    for changed in (_version(4, removed="1"), _version(4, epoch="f")):
        fresh = cache.validated("ann", changed)
        assert fresh is not ann and fresh.found("docs", [1]) == {}
        ann = fresh
    cache.validated("bob", _version(1))
    cache.validated("cyd", _version(1))
    assert cache.peek("ann") is None
    assert cache.peek("bob") is not None
    # No epoch (data written before epochs, or no data): nothing kept for the user.
    cache.validated("bob", _version(2, epoch=""))
    assert cache.peek("bob") is None
    assert SearchCache(users=0).validated("ann", _version(1)) is not None
    assert SearchCache(users=0).peek("ann") is None
