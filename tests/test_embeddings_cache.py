"""The query cache of :func:`agentmem.search.embeddings.embed_query`.

A search embeds its query and the query's words; each embedder keeps a bounded cache of
these vectors, so a repeated query or word costs no model call. These tests use a
deterministic stand-in embedder that counts its calls: no model is needed.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
import zlib
from collections.abc import Sequence

import pytest

np = pytest.importorskip("numpy")

from agentmem import InMemoryMemoryService, MemoryHit  # noqa: E402
from agentmem.errors import BackendError  # noqa: E402
from agentmem.search.embeddings import (  # noqa: E402
    QUERY_CACHE_BYTES,
    QueryVectorCache,
    embed_query,
    embed_texts,
    query_cache,
)
from tests.helpers import text_message  # noqa: E402

_DIMENSIONS = 16


def _vector(text: str) -> list[float]:
    """A fixed pseudo-random vector per text, whatever the batch it comes in."""
    generator = np.random.default_rng(zlib.crc32(text.encode()))
    return [float(x) for x in generator.standard_normal(_DIMENSIONS)]


class CountingEmbedder:
    """Gives each text its own vector and records the texts of every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [_vector(text) for text in texts]


class SlottedEmbedder:
    """An embedder that cannot be weakly referenced: it gets no cache."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [_vector(text) for text in texts]


async def _uncached(query: str) -> tuple[object, dict[str, object]]:
    """What embed_query gives with the cache turned off."""
    embedder = CountingEmbedder()
    cache = query_cache(embedder)
    assert cache is not None
    cache.max_bytes = 0
    return await embed_query(embedder, query)


def _assert_same(
    embedded: tuple[object, dict[str, object]], expected: tuple[object, dict[str, object]]
) -> None:
    """Bit for bit: the same floats, in the same dtype, for the same terms."""
    vector, words = embedded
    expected_vector, expected_words = expected
    assert np.asarray(vector).dtype == np.float32
    assert np.asarray(vector).tobytes() == np.asarray(expected_vector).tobytes()
    assert list(words) == list(expected_words)
    for term, word_vector in words.items():
        assert np.asarray(word_vector).tobytes() == np.asarray(expected_words[term]).tobytes()


def cache_entry_bytes() -> int:
    """The bytes one short text and its vector take in a cache."""
    cache = QueryVectorCache()
    cache.put_many(["word00"], [np.zeros(_DIMENSIONS, dtype=np.float32)])
    return cache.nbytes


async def test_a_repeated_query_makes_no_model_call() -> None:
    embedder = CountingEmbedder()
    first = await embed_query(embedder, "red cars in Lisbon")
    second = await embed_query(embedder, "red cars in Lisbon")
    assert embedder.calls == [["red cars in Lisbon", "red", "cars", "lisbon"]]
    _assert_same(second, first)


async def test_only_the_texts_not_cached_are_embedded_in_one_call() -> None:
    embedder = CountingEmbedder()
    await embed_query(embedder, "red cars")
    await embed_query(embedder, "blue cars")
    await embed_query(embedder, "red bikes")
    assert embedder.calls == [
        ["red cars", "red", "cars"],
        ["blue cars", "blue"],
        ["red bikes", "bikes"],
    ]


async def test_cached_results_are_bit_identical_to_uncached_ones() -> None:
    embedder = CountingEmbedder()
    queries = ["red cars", "blue cars", "red cars", "the red bikes", "cars"]
    for query in queries:
        _assert_same(await embed_query(embedder, query), await _uncached(query))
    # The last query is a word of the first: it made no call.
    assert embedder.calls == [
        ["red cars", "red", "cars"],
        ["blue cars", "blue"],
        ["the red bikes", "bikes"],
    ]


async def test_a_query_that_is_a_cached_word_makes_no_call() -> None:
    embedder = CountingEmbedder()
    await embed_query(embedder, "red cars")
    await embed_query(embedder, "cars")
    assert embedder.calls == [["red cars", "red", "cars"]]


async def test_search_results_are_the_same_with_and_without_the_cache() -> None:
    memories = [
        text_message("I drive a red car to work"),
        text_message("Lisbon has yellow trams"),
        text_message("my bike is blue"),
        text_message("cars are banned downtown"),
    ]
    cached_embedder, uncached_embedder = CountingEmbedder(), CountingEmbedder()
    uncached_cache = query_cache(uncached_embedder)
    assert uncached_cache is not None
    uncached_cache.max_bytes = 0
    cached = InMemoryMemoryService(embedder=cached_embedder)
    uncached = InMemoryMemoryService(embedder=uncached_embedder)
    for service in (cached, uncached):
        await service.add_memory("u", memories)
    for query in ["red cars", "trams in Lisbon", "red cars", "blue bike", "cars"]:
        with_cache = await cached.search_memory_hits("u", query, explain=True)
        without = await uncached.search_memory_hits("u", query, explain=True)
        assert [_ranked(hit) for hit in with_cache] == [_ranked(hit) for hit in without]
    # Five searches after storing; two answered from the cache alone.
    assert len(cached_embedder.calls) == 1 + 3
    assert len(uncached_embedder.calls) == 1 + 5


def _ranked(hit: MemoryHit) -> tuple[str, float, object]:
    """What a search decides about a hit: which memory, its score and why."""
    return hit.message.get_text_content() or "", hit.score, hit.explanation


async def test_returned_vectors_are_copies_the_caller_may_change() -> None:
    embedder = CountingEmbedder()
    vector, words = await embed_query(embedder, "red cars")
    vector[:] = 0
    words["red"][:] = 0
    again, again_words = await embed_query(embedder, "red cars")
    assert np.any(again != 0) and np.any(again_words["red"] != 0)
    assert len(embedder.calls) == 1


async def test_each_embedder_has_its_own_cache() -> None:
    first, second = CountingEmbedder(), CountingEmbedder()
    await embed_query(first, "red cars")
    await embed_query(second, "red cars")
    assert len(first.calls) == len(second.calls) == 1
    assert query_cache(first) is query_cache(first)
    assert query_cache(first) is not query_cache(second)


async def test_the_cache_goes_with_its_embedder() -> None:
    embedder = CountingEmbedder()
    await embed_query(embedder, "red cars")
    cache = weakref.ref(query_cache(embedder))  # type: ignore[arg-type]
    del embedder
    gc.collect()
    assert cache() is None


async def test_an_embedder_without_weak_references_is_not_cached() -> None:
    embedder = SlottedEmbedder()
    assert query_cache(embedder) is None
    first = await embed_query(embedder, "red cars")
    second = await embed_query(embedder, "red cars")
    assert embedder.calls == 2
    _assert_same(second, first)


async def test_the_cache_holds_at_most_max_bytes_dropping_the_least_recently_used() -> None:
    embedder = CountingEmbedder()
    cache = query_cache(embedder)
    assert cache is not None
    assert cache.max_bytes == QUERY_CACHE_BYTES
    await embed_query(embedder, "alpha")
    entry = cache.nbytes  # one text ("alpha" is both the query and its word)
    cache.max_bytes = 3 * entry
    await embed_query(embedder, "bravo")
    await embed_query(embedder, "charl")
    await embed_query(embedder, "alpha")  # used again: now the most recent
    await embed_query(embedder, "delta")  # drops "bravo", the least recently used
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    assert "bravo" not in cache
    assert all(text in cache for text in ("alpha", "charl", "delta"))
    calls = len(embedder.calls)
    await embed_query(embedder, "alpha")
    assert len(embedder.calls) == calls
    await embed_query(embedder, "bravo")
    assert embedder.calls[-1] == ["bravo"]


async def test_lowering_max_bytes_drops_entries_and_zero_turns_the_cache_off() -> None:
    embedder = CountingEmbedder()
    cache = query_cache(embedder)
    assert cache is not None
    await embed_query(embedder, "red cars")
    assert len(cache) == 3
    cache.max_bytes = 0
    assert len(cache) == 0 and cache.nbytes == 0
    await embed_query(embedder, "red cars")
    await embed_query(embedder, "red cars")
    assert len(embedder.calls) == 3 and len(cache) == 0


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        QueryVectorCache(-1)
    with pytest.raises(ValueError, match="max_bytes"):
        QueryVectorCache().max_bytes = -1


async def test_clear_forgets_every_vector() -> None:
    embedder = CountingEmbedder()
    cache = query_cache(embedder)
    assert cache is not None
    await embed_query(embedder, "red cars")
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    await embed_query(embedder, "red cars")
    assert len(embedder.calls) == 2


async def test_a_vector_of_another_length_than_the_cached_ones_is_refused() -> None:
    class Shrinking(CountingEmbedder):
        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            vectors = await super().embed(texts)
            return [v[: _DIMENSIONS - len(self.calls) + 1] for v in vectors]

    embedder = Shrinking()
    await embed_query(embedder, "red cars")
    with pytest.raises(BackendError, match="different lengths"):
        await embed_query(embedder, "red bikes")


async def test_concurrent_searches_see_the_same_vector_for_a_text() -> None:
    class Slow(CountingEmbedder):
        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            await asyncio.sleep(0.01)
            # Each call gives other floats: the first one cached must win everywhere.
            return [[x + len(self.calls) for x in v] for v in await super().embed(texts)]

    embedder = Slow()
    results = await asyncio.gather(*(embed_query(embedder, "red cars") for _ in range(5)))
    later = await embed_query(embedder, "red cars")
    for result in results:
        _assert_same(result, later)
    assert len(embedder.calls) == 5  # all missed at once; none after


def test_threads_with_their_own_event_loops_share_the_cache_safely() -> None:
    embedder = CountingEmbedder()
    cache = query_cache(embedder)
    assert cache is not None
    queries = [f"word{i % 40} other{i % 7}" for i in range(200)]
    expected = {query: asyncio.run(_uncached(query)) for query in set(queries)}
    cache.max_bytes = 30 * cache_entry_bytes()
    failures: list[BaseException] = []

    def run() -> None:
        async def ask_all() -> None:
            for query in queries:
                _assert_same(await embed_query(embedder, query), expected[query])

        try:
            asyncio.run(ask_all())
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert cache.nbytes <= cache.max_bytes


async def test_the_words_of_stored_terms_are_cached_and_memories_are_not() -> None:
    # Storing embeds memory texts and the words of new terms: queries use such words.
    embedder = CountingEmbedder()
    service = InMemoryMemoryService(embedder=embedder)
    await service.add_memory("u", [text_message("red cars")])
    cache = query_cache(embedder)
    assert cache is not None and "red" in cache and "cars" in cache
    assert "red cars" not in cache
    await service.search_memory("u", "red cars")
    assert embedder.calls[-1] == ["red cars"]


async def test_embed_texts_is_not_cached() -> None:
    embedder = CountingEmbedder()
    await embed_texts(embedder, ["red cars"])
    await embed_texts(embedder, ["red cars"])
    assert len(embedder.calls) == 2
