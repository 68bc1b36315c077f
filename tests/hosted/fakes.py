"""In-memory fakes of the Tablestore SDK's store classes, and a local embedder.

The fakes subclass the real ``tablestore-for-agent-memory`` stores and replace only the
methods that would send requests, so argument checks, multi-tenant rules and the
``full_text_search``/``vector_search`` query building are the SDK's own. They take and
return the SDK's real types (``Document``, ``DocumentHit``, ``Response``, ``Session``,
``Message``) and evaluate the SDK's real filter objects. What they cannot show is
Tablestore's own behaviour: its scoring, its index delay and its limits. Only the live
tests check those.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import tablestore
from pydantic import Field, validate_call
from tablestore_for_agent_memory.base.base_knowledge_store import Document, DocumentHit
from tablestore_for_agent_memory.base.base_memory_store import Message as StoreMessage
from tablestore_for_agent_memory.base.base_memory_store import Session as StoreSession
from tablestore_for_agent_memory.base.common import Order, Response, microseconds_timestamp
from tablestore_for_agent_memory.base.filter import (
    AND,
    GT,
    GTE,
    IN,
    LT,
    LTE,
    NOT,
    OR,
    All,
    Eq,
    Filter,
    NotEQ,
    NotIN,
    TextMatch,
    VectorQuery,
)
from tablestore_for_agent_memory.knowledge.async_knowledge_store import AsyncKnowledgeStore
from tablestore_for_agent_memory.memory.async_memory_store import AsyncMemoryStore
from tablestore_for_agent_memory.util.tablestore_helper import TablestoreHelper

from agentmem.search.analysis import analyze

_PRIMARY_KEY = ("document_id", "tenant_id")


def _service_error(message: str) -> tablestore.OTSServiceError:
    return tablestore.OTSServiceError(400, "OTSParameterInvalid", message, "fake-request")


def _encode_token(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _decode_token(token: str | None) -> int:
    return int(base64.b64decode(token.encode()).decode()) if token else 0


class FakeAsyncKnowledgeStore(AsyncKnowledgeStore):
    """``AsyncKnowledgeStore`` over a dict instead of a Tablestore table.

    Full-text queries follow the ``SPLIT`` analyzer on spaces and score with BM25 over
    the whole table; vector queries score ``(1 + cosine) / 2`` like ``VM_COSINE``;
    queries without a score return rows in primary-key order with no score, as
    Tablestore does. Querying a column that is not in the search index raises the
    ``OTSServiceError`` Tablestore would.
    """

    def __init__(self, tablestore_client: Any = None, **kwargs: Any) -> None:
        super().__init__(tablestore_client=tablestore_client, **kwargs)
        self._fake_rows: dict[tuple[str, str], Document] = {}
        self._init_calls = 0
        self._requests: Counter[str] = Counter()

    @property
    def requests(self) -> Counter[str]:
        """How many times each store method was called."""
        return self._requests

    async def init_table(self) -> None:
        self._init_calls += 1
        self._requests["init_table"] += 1
        if self._init_calls == 1:
            await self._create_search_index_schema()

    async def _create_search_index_schema(self) -> None:
        # The real method also adds the store's own fields before creating the index.
        for name, field_type in (
            ("document_id", tablestore.FieldType.KEYWORD),
            ("tenant_id", tablestore.FieldType.KEYWORD),
            (self._text_field, tablestore.FieldType.TEXT),
            (self._embedding_field, tablestore.FieldType.VECTOR),
        ):
            self._search_index_schema = TablestoreHelper.add_schema(
                tablestore.FieldSchema(name, field_type), self._search_index_schema
            )

    async def close(self) -> None:
        """Nothing to close: the fake holds no client."""

    async def put_document(self, document: Document) -> None:
        self._requests["put_document"] += 1
        self._check_vector_dimension(document)
        self._check_enable_multi_tenant(document)
        # The real conversion, which refuses metadata values Tablestore cannot store.
        TablestoreHelper.meta_data_to_ots_columns(document.metadata or {})
        self._fake_rows[(document.document_id, document.tenant_id or "")] = copy.deepcopy(document)

    async def update_document(self, document: Document) -> None:
        await self.put_document(document)

    async def delete_document(self, document_id: str, tenant_id: str | None = None) -> None:
        self._requests["delete_document"] += 1
        tenant = self._check_enable_multi_tenant_id(tenant_id)
        self._fake_rows.pop((document_id, tenant), None)

    async def delete_document_by_tenant(self, tenant_id: str) -> None:
        for key in [key for key in self._fake_rows if key[1] == tenant_id]:
            del self._fake_rows[key]

    async def delete_all_documents(self) -> None:
        self._fake_rows.clear()

    async def get_document(self, document_id: str, tenant_id: str | None = None) -> Document | None:
        tenant = self._check_enable_multi_tenant_id(tenant_id)
        row = self._fake_rows.get((document_id, tenant))
        return copy.deepcopy(row)

    async def get_documents(
        self, document_id_list: list[str], tenant_id: str | None = None
    ) -> list[Document | None]:
        return [await self.get_document(document_id, tenant_id) for document_id in document_id_list]

    async def get_all_documents(self) -> AsyncIterator[Document]:  # type: ignore[override]
        rows = [copy.deepcopy(self._fake_rows[key]) for key in sorted(self._fake_rows)]

        async def iterate() -> AsyncIterator[Document]:
            for row in rows:
                yield row

        return iterate()

    @validate_call
    async def search_documents(  # type: ignore[override]
        self,
        tenant_id: list[str] | str | None = None,
        metadata_filter: Filter | None = None,
        limit: int | None = Field(default=100, le=1000, ge=1),
        next_token: str | None = None,
        meta_data_to_get: list[str] | None = None,
        **kwargs: Any,
    ) -> Response[DocumentHit]:
        self._requests["search"] += 1
        columns = self._default_meta_data_to_get if meta_data_to_get is None else meta_data_to_get
        condition = self._wrap_tenant_id_filter(
            tenant_id=tenant_id, metadata_filter=metadata_filter
        )
        scored, ranked = self._evaluate_top(condition)
        if ranked:
            ordered = sorted(scored, key=lambda item: (-(item[1] or 0.0), item[0]))
        else:
            ordered = sorted(scored)
        start = _decode_token(next_token)
        page = ordered[start : start + (limit or 100)]
        end = start + len(page)
        hits = [
            DocumentHit(document=self._project(key, columns), score=score) for key, score in page
        ]
        token = _encode_token(end) if end < len(ordered) else None
        return Response(hits=hits, next_token=token)

    def _project(self, key: tuple[str, str], columns: list[str]) -> Document:
        row = self._fake_rows[key]
        wanted = set(columns)
        return Document(
            document_id=row.document_id,
            tenant_id=row.tenant_id,
            text=row.text if self._text_field in wanted else None,
            embedding=copy.deepcopy(row.embedding) if self._embedding_field in wanted else None,
            metadata={k: v for k, v in (row.metadata or {}).items() if k in wanted},
        )

    def _evaluate_top(
        self, condition: Filter | None
    ) -> tuple[list[tuple[tuple[str, str], float | None]], bool]:
        if isinstance(condition, VectorQuery):
            return self._vector_query(condition), True
        ranked = _has_text_match(condition)
        stats = self._text_stats()
        results = []
        for key, row in self._fake_rows.items():
            matched, score = self._evaluate(condition, row, stats)
            if matched:
                results.append((key, score if ranked else None))
        return results, ranked

    def _vector_query(self, query: VectorQuery) -> list[tuple[tuple[str, str], float | None]]:
        stats = self._text_stats()
        candidates = []
        for key, row in self._fake_rows.items():
            if row.embedding is None:
                continue
            if (
                query.metadata_filter is not None
                and not self._evaluate(query.metadata_filter, row, stats)[0]
            ):
                continue
            candidates.append((key, (1.0 + _cosine(query.query_vector, row.embedding)) / 2.0))
        candidates.sort(key=lambda item: (-item[1], item[0]))
        return list(candidates[: query.top_k or 10])

    def _text_stats(self) -> tuple[int, float, Counter[str]]:
        frequencies: Counter[str] = Counter()
        total = 0
        for row in self._fake_rows.values():
            tokens = _split(row.text)
            total += len(tokens)
            frequencies.update(set(tokens))
        count = len(self._fake_rows)
        return count, (total / count if count else 0.0), frequencies

    def _field(self, row: Document, name: str) -> Any:
        indexed = {schema.field_name for schema in self._search_index_schema or []}
        if name not in indexed:
            raise _service_error(f"field {name!r} is not in search index {self._search_index_name}")
        if name == "document_id":
            return row.document_id
        if name == "tenant_id":
            return row.tenant_id
        if name == self._text_field:
            return row.text
        return (row.metadata or {}).get(name)

    def _evaluate(
        self, condition: Filter | None, row: Document, stats: tuple[int, float, Counter[str]]
    ) -> tuple[bool, float]:
        if condition is None or isinstance(condition, All):
            return True, 0.0
        if isinstance(condition, AND):
            results = [self._evaluate(part, row, stats) for part in condition.filters]
            return all(ok for ok, _ in results), sum(score for _, score in results)
        if isinstance(condition, OR):
            results = [self._evaluate(part, row, stats) for part in condition.filters]
            return any(ok for ok, _ in results), sum(score for ok, score in results if ok)
        if isinstance(condition, NOT):
            return not any(self._evaluate(part, row, stats)[0] for part in condition.filters), 0.0
        if isinstance(condition, TextMatch):
            return self._text_match(condition, row, stats)
        if isinstance(condition, VectorQuery):
            raise _service_error("a vector query must be the top-level query")
        value = self._field(row, condition.meta_key or "")
        if isinstance(condition, Eq):
            return value == condition.meta_value, 0.0
        if isinstance(condition, NotEQ):
            return value != condition.meta_value, 0.0
        if isinstance(condition, IN):
            return value in condition.meta_values, 0.0
        if isinstance(condition, NotIN):
            return value not in condition.meta_values, 0.0
        if value is None:
            return False, 0.0
        if isinstance(condition, GT):
            return value > condition.meta_value, 0.0
        if isinstance(condition, GTE):
            return value >= condition.meta_value, 0.0
        if isinstance(condition, LT):
            return value < condition.meta_value, 0.0
        if isinstance(condition, LTE):
            return value <= condition.meta_value, 0.0
        raise _service_error(f"the fake does not evaluate {type(condition).__name__}")

    def _text_match(
        self, condition: TextMatch, row: Document, stats: tuple[int, float, Counter[str]]
    ) -> tuple[bool, float]:
        tokens = Counter(_split(self._field(row, condition.meta_key or "")))
        count, average, frequencies = stats
        score = 0.0
        matched = False
        length = sum(tokens.values())
        for term in set(_split(str(condition.meta_value))):
            frequency = tokens.get(term, 0)
            if not frequency:
                continue
            matched = True
            idf = math.log(1.0 + (count - frequencies[term] + 0.5) / (frequencies[term] + 0.5))
            norm = 1.2 * (0.25 + 0.75 * length / (average or 1.0))
            score += idf * frequency * 2.2 / (frequency + norm)
        return matched, score


def _split(text: str | None) -> list[str]:
    return [token for token in (text or "").split(" ") if token]


def _has_text_match(condition: Filter | None) -> bool:
    if isinstance(condition, TextMatch):
        return True
    if isinstance(condition, AND | OR):
        return any(_has_text_match(part) for part in condition.filters)
    return False


def _cosine(left: Iterable[float], right: Iterable[float]) -> float:
    a, b = list(left), list(right)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class FakeAsyncMemoryStore(AsyncMemoryStore):
    """``AsyncMemoryStore`` over dicts: sessions by (user, session), messages by session.

    Messages list in primary-key order (session id, create time, message id), newest
    first unless ``order=Order.ASC``, like the real range reads.
    """

    def __init__(self, tablestore_client: Any = None, **kwargs: Any) -> None:
        super().__init__(tablestore_client=tablestore_client, **kwargs)
        self._fake_sessions: dict[tuple[str, str], StoreSession] = {}
        self._fake_messages: dict[tuple[str, int, str], StoreMessage] = {}
        self._requests: Counter[str] = Counter()

    @property
    def requests(self) -> Counter[str]:
        """How many times each store method was called."""
        return self._requests

    async def init_table(self) -> None:
        self._requests["init_table"] += 1

    async def init_search_index(self) -> None:
        self._requests["init_search_index"] += 1

    async def close(self) -> None:
        """Nothing to close: the fake holds no client."""

    async def put_session(self, session: StoreSession) -> None:
        self._requests["put_session"] += 1
        TablestoreHelper.meta_data_to_ots_columns(session.metadata or {})
        self._fake_sessions[(session.user_id, session.session_id)] = copy.deepcopy(session)

    async def update_session(self, session: StoreSession) -> None:
        self._requests["update_session"] += 1
        TablestoreHelper.meta_data_to_ots_columns(session.metadata or {})
        key = (session.user_id, session.session_id)
        stored = self._fake_sessions.get(key)
        if stored is None:
            self._fake_sessions[key] = copy.deepcopy(session)
            return
        stored.metadata = {**(stored.metadata or {}), **copy.deepcopy(session.metadata or {})}
        stored.update_time = session.update_time

    async def delete_session(self, user_id: str, session_id: str) -> None:
        self._requests["delete_session"] += 1
        self._fake_sessions.pop((user_id, session_id), None)

    async def get_session(self, user_id: str, session_id: str) -> StoreSession | None:
        self._requests["get_session"] += 1
        return copy.deepcopy(self._fake_sessions.get((user_id, session_id)))

    async def list_sessions(  # type: ignore[override]
        self,
        user_id: str,
        metadata_filter: Filter | None = None,
        max_count: int | None = None,
        batch_size: int | None = None,
    ) -> AsyncIterator[StoreSession]:
        self._requests["list_sessions"] += 1
        if metadata_filter is not None:
            raise NotImplementedError("the fake lists sessions without filters")
        keys = sorted(key for key in self._fake_sessions if key[0] == user_id)[:max_count]
        sessions = [copy.deepcopy(self._fake_sessions[key]) for key in keys]
        return _iterate(sessions)

    async def put_message(self, message: StoreMessage) -> None:
        self._requests["put_message"] += 1
        if message.create_time is None:
            message.create_time = microseconds_timestamp()
        TablestoreHelper.meta_data_to_ots_columns(message.metadata or {})
        key = (message.session_id, message.create_time, message.message_id)
        self._fake_messages[key] = copy.deepcopy(message)

    async def delete_message(
        self, session_id: str, message_id: str, create_time: int | None = None
    ) -> None:
        for key in [k for k in self._fake_messages if k[0] == session_id and k[2] == message_id]:
            if create_time is None or key[1] == create_time:
                del self._fake_messages[key]

    async def delete_messages(self, session_id: str) -> None:
        self._requests["delete_messages"] += 1
        for key in [key for key in self._fake_messages if key[0] == session_id]:
            del self._fake_messages[key]

    async def list_messages(  # type: ignore[override]
        self,
        session_id: str,
        inclusive_start_create_time: int | None = None,
        inclusive_end_create_time: int | None = None,
        order: Order | None = None,
        metadata_filter: Filter | None = None,
        max_count: int | None = None,
        batch_size: int | None = None,
    ) -> AsyncIterator[StoreMessage]:
        self._requests["list_messages"] += 1
        if metadata_filter is not None or inclusive_start_create_time is not None:
            raise NotImplementedError("the fake lists whole sessions only")
        if inclusive_end_create_time is not None:
            raise NotImplementedError("the fake lists whole sessions only")
        keys = sorted(
            (key for key in self._fake_messages if key[0] == session_id),
            reverse=order is not Order.ASC,
        )[:max_count]
        return _iterate([copy.deepcopy(self._fake_messages[key]) for key in keys])


async def _iterate(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class HashingEmbedder:
    """A deterministic local embedder: analysed terms hashed into ``dimension`` buckets.

    Texts sharing terms get similar vectors, so nearest-neighbour order follows term
    overlap; good enough to exercise vector code paths offline, not a language model.
    """

    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for term in analyze(text):
            digest = hashlib.sha256(term.encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % self.dimension] += 1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if not norm:
            # A text without terms still needs a usable, non-zero vector.
            vector[0] = 1.0
            return vector
        return [x / norm for x in vector]
