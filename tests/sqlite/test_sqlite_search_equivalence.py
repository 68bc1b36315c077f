"""For the same data, SQLite search returns exactly what the in-memory backend returns.

The corpus, queries and filters are those of the Redis backend's equivalence test, so
the three backends are held to one set of results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentmem import InMemoryMemoryService, MemoryService, SQLiteMemoryService
from tests.helpers import text_message
from tests.redis.search_corpus import chat, fill, other_words, results
from tests.redis.test_redis_search_equivalence import HashingEmbedder


@pytest.fixture
async def sqlite_memory(tmp_path: Path) -> Any:
    """Makes started SQLite memory services on the test's file; stops them at the end."""
    started: list[SQLiteMemoryService] = []

    async def make(**options: Any) -> SQLiteMemoryService:
        service = SQLiteMemoryService(tmp_path / "memory.db", **options)
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.stop()


async def _same_after_changes(reference: MemoryService, sqlite: MemoryService) -> None:
    assert await results(sqlite) == await results(reference)
    added = text_message("tea by the lake at sunrise")
    for service in (reference, sqlite):
        await service.delete_memory("u1", "session 3")
        await service.add_memory("u1", [added], "session 3")
    assert await results(sqlite) == await results(reference)


@pytest.mark.parametrize("seed", [1, 2])
async def test_ranked_ids_and_scores_equal_the_in_memory_backend(
    sqlite_memory: Any, seed: int
) -> None:
    reference, sqlite = InMemoryMemoryService(), await sqlite_memory()
    corpus = chat(seed)
    await fill(reference, corpus)
    await fill(sqlite, corpus)
    assert any(len(hits) > 3 for hits in await results(reference))
    await _same_after_changes(reference, sqlite)


async def test_equal_on_an_index_with_common_terms(sqlite_memory: Any) -> None:
    # Over 1,000 memories the frequent words are "common" for the ranking, which then
    # scores only memories near a rarer query term: that path must agree as well.
    reference, sqlite = InMemoryMemoryService(), await sqlite_memory()
    corpus = chat(4, batches_count=320)
    await fill(reference, corpus)
    await fill(sqlite, corpus)
    for query in ("tea coffee", "tea blanket", "painting sunrise lake sweater"):
        expected = await reference.search_memory_hits("u1", query, {"top_k": 20})
        found = await sqlite.search_memory_hits("u1", query, {"top_k": 20})
        assert [(h.message.id, h.score) for h in found] == [
            (h.message.id, h.score) for h in expected
        ]


async def test_hybrid_ranking_equals_the_in_memory_backend(sqlite_memory: Any) -> None:
    pytest.importorskip("numpy")
    embedder = HashingEmbedder()
    reference = InMemoryMemoryService(embedder=embedder)
    sqlite = await sqlite_memory(embedder=embedder)
    corpus = chat(3)
    await fill(reference, corpus)
    await fill(sqlite, corpus)
    await _same_after_changes(reference, sqlite)


async def test_term_vectors_leave_with_the_last_memory_holding_the_term(
    sqlite_memory: Any,
) -> None:
    pytest.importorskip("numpy")
    sqlite = await sqlite_memory(embedder=HashingEmbedder())
    await sqlite.add_memory("u", [text_message("tea by the lake")], session_id="a")
    await sqlite.add_memory("u", [text_message("tea in the garden")], session_id="b")

    async def vocabulary() -> set[str]:
        rows = await sqlite.run(
            lambda connection: connection.execute("SELECT term FROM memory_term_vectors").fetchall()
        )
        return {term for (term,) in rows}

    assert await vocabulary() == {"tea", "lake", "garden"}
    await sqlite.delete_memory("u", "b")
    assert await vocabulary() == {"tea", "lake"}
    await sqlite.delete_memory("u", "a")
    assert await vocabulary() == set()


async def test_cached_vectors_follow_other_writers(sqlite_memory: Any) -> None:
    # The reader keeps the user's vectors between searches; another connection (as
    # another process would) adds, deletes and re-creates the user's memories.
    pytest.importorskip("numpy")
    embedder = HashingEmbedder()
    reference = InMemoryMemoryService(embedder=embedder)
    writer = await sqlite_memory(embedder=embedder)
    reader = await sqlite_memory(embedder=embedder)
    uncached = await sqlite_memory(embedder=embedder, vector_cache_users=0)
    corpus = chat(5)
    half = len(corpus) // 2

    async def both(action: Any) -> None:
        for service in (reference, writer):
            await action(service)

    async def agree() -> None:
        expected = await results(reference)
        assert await results(reader) == expected
        assert await results(uncached) == expected

    await both(lambda service: fill(service, corpus[:half]))
    await agree()
    await both(lambda service: fill(service, corpus[half:]))
    await agree()
    await both(lambda service: service.delete_memory("u1"))
    renamed = other_words(corpus)
    await both(lambda service: fill(service, renamed))
    await agree()
    await both(lambda service: service.delete_memory("u1", "session 2"))
    await agree()
    with pytest.raises(ValueError, match="vector_cache_users"):
        SQLiteMemoryService(vector_cache_users=-1)
