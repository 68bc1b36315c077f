"""For the same data, Redis search returns exactly what the in-memory backend returns."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from agentmem import InMemoryMemoryService, Message
from tests.helpers import text_message
from tests.redis.conftest import Services
from tests.redis.search_corpus import chat, fill, other_words, results


@pytest.mark.parametrize("seed", [1, 2])
async def test_ranked_ids_and_scores_equal_the_in_memory_backend(
    services: Services, seed: int
) -> None:
    reference, redis_memory = InMemoryMemoryService(), await services.memory()
    corpus = chat(seed)
    await fill(reference, corpus)
    await fill(redis_memory, corpus)
    expected = await results(reference)
    assert any(len(hits) > 3 for hits in expected)
    assert await results(redis_memory) == expected
    added = text_message("tea by the lake at sunrise")
    for service in (reference, redis_memory):
        await service.delete_memory("u1", "session 3")
        await service.add_memory("u1", [added], "session 3")
    assert await results(redis_memory) == await results(reference)


async def test_equal_on_an_index_with_common_terms(services: Services) -> None:
    # Over 1,000 memories, the frequent words are "common" for the ranking, which then
    # scores only memories near a rarer query term: that path must agree as well.
    reference, redis_memory = InMemoryMemoryService(), await services.memory()
    corpus = chat(4, batches_count=320)
    await fill(reference, corpus)
    await fill(redis_memory, corpus)
    for query in ("tea coffee", "tea blanket", "painting sunrise lake sweater"):
        expected = await reference.search_memory_hits("u1", query, {"top_k": 20})
        found = await redis_memory.search_memory_hits("u1", query, {"top_k": 20})
        assert [(h.message.id, h.score) for h in found] == [
            (h.message.id, h.score) for h in expected
        ]


class HashingEmbedder:
    """A deterministic stand-in for an embedding model: hashed bag of words, 32 dims."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 32
            for word in text.lower().split():
                digest = hashlib.sha256(word.encode()).digest()
                vector[digest[0] % 32] += 1.0 + digest[1] / 255
            vectors.append(vector)
        return vectors


async def test_hybrid_ranking_equals_the_in_memory_backend(services: Services) -> None:
    pytest.importorskip("numpy")
    embedder = HashingEmbedder()
    reference = InMemoryMemoryService(embedder=embedder)
    redis_memory = await services.memory(embedder=embedder)
    corpus = chat(3)
    await fill(reference, corpus)
    await fill(redis_memory, corpus)
    assert await results(redis_memory) == await results(reference)
    # Deleting a session takes the words held only there out of the query expansion.
    for service in (reference, redis_memory):
        await service.delete_memory("u1", "session 3")
    assert await results(redis_memory) == await results(reference)


async def test_term_vectors_leave_with_the_last_memory_holding_the_term(
    services: Services,
) -> None:
    pytest.importorskip("numpy")
    redis_memory = await services.memory(embedder=HashingEmbedder())
    await redis_memory.add_memory("u", [text_message("tea by the lake")], session_id="a")
    await redis_memory.add_memory("u", [text_message("tea in the garden")], session_id="b")
    [vocab_key] = [key for key in await services.keys() if key.endswith(":mem:vocab")]

    async def vocabulary() -> set[str]:
        return {term.decode() for term in await services.raw.hkeys(vocab_key)}

    assert await vocabulary() == {"tea", "lake", "garden"}
    await redis_memory.delete_memory("u", "b")
    assert await vocabulary() == {"tea", "lake"}
    await redis_memory.delete_memory("u", "a")
    assert await services.keys() == []


async def test_cached_vectors_follow_other_writers(services: Services) -> None:
    pytest.importorskip("numpy")
    embedder = HashingEmbedder()
    reference = InMemoryMemoryService(embedder=embedder)
    writer = await services.memory(embedder=embedder)
    reader = await services.memory(embedder=embedder)
    corpus = chat(5)
    half = len(corpus) // 2

    async def both(action: Any) -> None:
        for service in (reference, writer):
            await action(service)

    await both(lambda service: fill(service, corpus[:half]))
    assert await results(reader) == await results(reference)
    # Added by another client: the reader reads only the new memories.
    await both(lambda service: fill(service, corpus[half:]))
    assert await results(reader) == await results(reference)
    # The user's data made anew, with as many memories but other words: only the new
    # epoch tells the reader.
    await both(lambda service: service.delete_memory("u1"))
    renamed = other_words(corpus)
    await both(lambda service: fill(service, renamed))
    assert await results(reader) == await results(reference)
    # A removal makes the reader read the user's vectors anew.
    await both(lambda service: service.delete_memory("u1", "session 2"))
    assert await results(reader) == await results(reference)
    # Data without an epoch (written before epochs existed) is read anew every time.
    [meta] = writer.keys.user("u1", "mem:meta")
    await services.raw.hdel(meta, "epoch")
    assert await results(reader) == await results(reference)
    await both(lambda service: service.delete_memory("u1", "session 4"))
    assert await results(reader) == await results(reference)


async def test_a_small_vector_cache_serves_many_users(services: Services) -> None:
    pytest.importorskip("numpy")
    embedder = HashingEmbedder()
    reference = InMemoryMemoryService(embedder=embedder)
    writer = await services.memory(embedder=embedder)
    reader = await services.memory(embedder=embedder, vector_cache_users=1)
    uncached = await services.memory(embedder=embedder, vector_cache_users=0)
    for number, user in enumerate(["ann", "bob", "cyd"]):
        batches = chat(10 + number, batches_count=8)
        for service in (reference, writer):
            for session, messages in batches:
                await service.add_memory(user, messages, session_id=session)
    for _ in range(2):
        for user in ["ann", "bob", "cyd"]:
            expected = await reference.search_memory_hits(user, "tea by the lake")
            for service in (reader, uncached):
                found = await service.search_memory_hits(user, "tea by the lake")
                assert [(h.message.id, h.score) for h in found] == [
                    (h.message.id, h.score) for h in expected
                ]
    with pytest.raises(ValueError, match="vector_cache_users"):
        await services.memory(vector_cache_users=-1)


@pytest.mark.parametrize("hybrid", [False, True], ids=["lexical", "hybrid"])
async def test_equal_when_written_and_removed_in_steps(services: Services, hybrid: bool) -> None:
    # Batches of 100 messages hold more index terms than one script takes, so each is
    # written in steps; the memories of a session written so go in steps too.
    if hybrid:
        pytest.importorskip("numpy")
    embedder = HashingEmbedder() if hybrid else None
    reference = InMemoryMemoryService(embedder=embedder)
    writer = await services.memory(embedder=embedder)
    reader = await services.memory(embedder=embedder)
    by_session: dict[str, list[Message]] = {}
    for session, messages in chat(6, batches_count=150):
        by_session.setdefault(session, []).extend(messages)
    # Metadata too long for an index entry stays in the message; filters still see it.
    noted = text_message("tea by the lake", metadata={"speaker": "ann", "notes": "n" * 2000})
    by_session["session 1"].append(noted)
    for session, messages in by_session.items():
        for at in range(0, len(messages), 100):
            for service in (reference, writer):
                await service.add_memory("u1", messages[at : at + 100], session_id=session)
    entries = await services.raw.zrange(writer.user_keys("u1").order, 0, -1)
    assert any(entry.split(b"\t")[4].startswith(b"+") for entry in entries)
    assert await results(reader) == await results(reference)
    hits = await reader.search_memory_hits("u1", "lake", {"metadata": noted.metadata})
    assert [hit.message.id for hit in hits] == [noted.id]
    for service in (reference, writer):
        await service.delete_memory("u1", "session 1")
        await service.add_memory("u1", by_session["session 2"][:3], session_id="session 7")
    assert await results(reader) == await results(reference)
