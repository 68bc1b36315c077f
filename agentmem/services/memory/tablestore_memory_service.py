"""Memories in Alibaba Cloud Tablestore, through ``tablestore-for-agent-memory``.

One Tablestore row per message in a knowledge-store table; a search index over it
serves listing (by primary key, which starts with the time of writing) and search
(full text over agentmem's analysed terms, or vectors from an :class:`Embedder`).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from typing_extensions import override

from agentmem._validation import (
    DEFAULT_SESSION_ID,
    check_id,
    check_optional_id,
    parse_list_filters,
    parse_search_filters,
)
from agentmem.errors import CorruptDataError, ServiceNotStartedError
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.search.analysis import analyze
from agentmem.search.embeddings import Embedder, embed_texts
from agentmem.search.ranking import SearchFilters, query_terms
from agentmem.services.memory.memory_service import MemoryHit, MemoryService, query_text
from agentmem.services.utils import MicrosecondClock, id_key
from agentmem.services.utils.tablestore_service_utils import (
    TablestoreClientHolder,
    tablestore_errors,
)

__all__ = ["SearchStrategy", "TablestoreMemoryService"]

# Column names of a memory row, besides the store's own ``document_id``/``tenant_id``.
_TERMS = "search_terms"
_EMBEDDING = "embedding"
_SESSION_KEY = "session_key"
_SESSION_ID = "session_id"
_CREATED_AT = "created_at"
_MESSAGE = "message"
_COLUMNS = ["document_id", "tenant_id", _SESSION_ID, _CREATED_AT, _MESSAGE]

# Tablestore returns at most this many rows per search request.
_MAX_PAGE = 1000
_DELETE_CONCURRENCY = 32


class SearchStrategy(StrEnum):
    """How :class:`TablestoreMemoryService` searches.

    ``FULL_TEXT`` matches agentmem's analysed terms (stemmed, stop words dropped) with
    Tablestore's full-text index; ``VECTOR`` ranks the memories that share a term with
    the query by the cosine similarity of their embeddings.
    """

    FULL_TEXT = "full_text"
    VECTOR = "vector"


class TablestoreMemoryService(MemoryService):
    """Memories in a Tablestore table with a search index; needs ``agentmem[tablestore]``.

    Give either ``tablestore_client`` (an ``AsyncOTSClient``, borrowed: the service
    never closes it) or ``end_point``, ``instance_name``, ``access_key_id`` and
    ``access_key_secret`` (the service then builds, owns and closes its client).
    ``start()`` creates the table and its search index if they do not exist.

    Each message is one row keyed by a hash of its user id, so ids of any length or
    characters are kept apart; the whole message is stored as JSON in one column, so
    every field (``metadata``, ``usage``...) survives as it was.

    How it differs from the in-memory backend:

    * Listing and search read Tablestore's search index, which follows writes after a
      short delay (typically a few seconds): a memory just added may not be listed or
      found at once, and deleting reaches only the memories already indexed.
    * Results are ranked by Tablestore's own scoring, not agentmem's shared ranking
      (no ``"ranked_search"`` capability); memories still must share a term with the
      query, with agentmem's stemming and stop words.
    * ``metadata`` filters and ``min_score`` are applied to the rows Tablestore returns,
      so a search reads more rows when they are given.
    * ``list_memory`` pages by reading the rows before the requested page.

    ``store_factory`` replaces ``AsyncKnowledgeStore``: it is called with that class's
    keyword arguments (a subclass, or an in-memory stand-in for tests).

    ``search_strategy=SearchStrategy.VECTOR`` needs an ``embedder`` (an
    :class:`agentmem.search.Embedder`) and numpy (``agentmem[vectors]``); texts are
    embedded only in that mode. ``vector_dimension`` (default: ``embedder.dimension``,
    else 1024) sizes the index's vector field when the index is created.

    Cost per call, in Tablestore requests: ``add_memory`` one write per message;
    ``search_memory`` one search (more with post-filters) plus, in vector mode, one
    embedding; ``list_memory`` one search per 1000 rows up to the page; deleting one
    search per 1000 rows plus one delete per row.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"list_by_session", "delete_by_session"})

    def __init__(
        self,
        tablestore_client: Any = None,
        *,
        end_point: str | None = None,
        instance_name: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        search_strategy: SearchStrategy | str = SearchStrategy.FULL_TEXT,
        embedder: Embedder | None = None,
        vector_dimension: int | None = None,
        table_name: str = "agentmem_memory",
        search_index_name: str = "agentmem_memory_search_index",
        store_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._strategy = SearchStrategy(search_strategy)
        if self._strategy is SearchStrategy.VECTOR and embedder is None:
            raise ValueError(
                "SearchStrategy.VECTOR needs an embedder (an agentmem.search.Embedder)"
            )
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must have an async embed(texts) method, got {embedder!r}")
        dimension = vector_dimension
        if dimension is None:
            dimension = getattr(embedder, "dimension", None) or 1024
        if not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"vector_dimension must be a positive int, got {dimension!r}")
        check_id(table_name, "table_name")
        check_id(search_index_name, "search_index_name")
        self._holder = TablestoreClientHolder(
            type(self).__name__,
            tablestore_client,
            (end_point, instance_name, access_key_id, access_key_secret),
            store_factory,
        )
        self._embedder = embedder
        self._dimension = dimension
        self._table_name = table_name
        self._search_index_name = search_index_name
        self._store_factory = store_factory
        self._store: Any = None
        self._clock = MicrosecondClock()

    @property
    def search_strategy(self) -> SearchStrategy:
        return self._strategy

    def _new_store(self, client: Any) -> Any:
        import tablestore

        if self._store_factory is None:
            from tablestore_for_agent_memory.knowledge.async_knowledge_store import (
                AsyncKnowledgeStore as factory,
            )
        else:
            factory = self._store_factory

        schema = [
            tablestore.FieldSchema(_SESSION_KEY, tablestore.FieldType.KEYWORD),
            tablestore.FieldSchema(_CREATED_AT, tablestore.FieldType.DOUBLE),
            # The text column holds agentmem's analysed terms separated by spaces, so
            # splitting on spaces indexes exactly agentmem's terms.
            tablestore.FieldSchema(
                _TERMS,
                tablestore.FieldType.TEXT,
                analyzer=tablestore.AnalyzerType.SPLIT,
                analyzer_parameter=tablestore.SplitAnalyzerParameter(delimiter=" "),
            ),
        ]
        return factory(
            tablestore_client=client,
            vector_dimension=self._dimension,
            enable_multi_tenant=True,
            table_name=self._table_name,
            search_index_name=self._search_index_name,
            search_index_schema=schema,
            text_field=_TERMS,
            embedding_field=_EMBEDDING,
        )

    @override
    async def start(self) -> None:
        """Create the table and search index if missing; idempotent.

        Raises :class:`BackendError` when Tablestore cannot be reached.
        """
        if self._store is not None:
            return
        self._store = await self._holder.open_store(self._new_store, "creating the memory table")

    @override
    async def stop(self) -> None:
        """Forget the store; close the client if the service built it."""
        self._store = None
        await self._holder.release()

    @override
    async def health(self) -> bool:
        """Whether one search request succeeds."""
        if self._store is None:
            return False
        try:
            await self._store.search_documents(
                tenant_id=id_key("health"), limit=1, meta_data_to_get=["document_id"]
            )
        except Exception:
            return False
        return True

    def _require_store(self) -> Any:
        if self._store is None:
            raise ServiceNotStartedError(self)
        return self._store

    @override
    async def add_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        check_id(user_id, "user_id")
        session = check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID
        parsed = to_messages(messages)
        store = self._require_store()
        if not parsed:
            return
        from tablestore_for_agent_memory.base.base_knowledge_store import Document

        texts = [" ".join(analyze(message.searchable_text())) for message in parsed]
        embeddings: list[list[float] | None] = [None] * len(parsed)
        if self._strategy is SearchStrategy.VECTOR and self._embedder is not None:
            vectors = await embed_texts(self._embedder, [m.searchable_text() for m in parsed])
            embeddings = [[float(x) for x in vector] for vector in vectors]
        tenant = id_key(user_id)
        first = self._clock.take(len(parsed))
        documents = []
        for offset, (message, text, embedding) in enumerate(
            zip(parsed, texts, embeddings, strict=True)
        ):
            stamp = first + offset
            documents.append(
                Document(
                    # Rows list in primary-key order, so the id starts with the time.
                    document_id=f"{stamp:017d}-{uuid.uuid4().hex}",
                    tenant_id=tenant,
                    text=text or None,
                    embedding=embedding,
                    metadata={
                        _SESSION_KEY: id_key(session),
                        _SESSION_ID: session,
                        _CREATED_AT: stamp / 1_000_000,
                        _MESSAGE: message.model_dump_json(),
                    },
                )
            )
        with tablestore_errors("writing memories"):
            for document in documents:
                await store.put_document(document)

    def _session_filter(self, session_id: str | None) -> Any:
        from tablestore_for_agent_memory.base.filter import Filters

        return None if session_id is None else Filters.eq(_SESSION_KEY, id_key(session_id))

    def _search_filter(self, filters: SearchFilters, text_match: Any = None) -> Any:
        """The server-side part of ``filters`` (with ``text_match``), or None."""
        from tablestore_for_agent_memory.base.filter import Filters

        parts = [] if text_match is None else [text_match]
        session = self._session_filter(filters.session_id)
        if session is not None:
            parts.append(session)
        if filters.start_time is not None:
            parts.append(Filters.gte(_CREATED_AT, filters.start_time))
        if filters.end_time is not None:
            parts.append(Filters.lte(_CREATED_AT, filters.end_time))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Filters.logical_and(parts)

    @override
    async def search_memory_hits(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any] | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        check_id(user_id, "user_id")
        parsed = parse_search_filters(filters)
        query = query_text(messages)
        store = self._require_store()
        terms = query_terms(query)
        if not terms:
            return []
        tenant = id_key(user_id)
        post_filtered = bool(parsed.metadata) or parsed.min_score is not None
        hits: list[MemoryHit] = []
        if self._strategy is SearchStrategy.VECTOR and self._embedder is not None:
            from tablestore_for_agent_memory.base.filter import Filters

            [unit] = await embed_texts(self._embedder, [query])
            vector = [float(x) for x in unit]
            # The nearest neighbours are taken among the memories sharing a term.
            condition = self._search_filter(parsed, Filters.text_match(_TERMS, " ".join(terms)))
            top_k = min(_MAX_PAGE, max(parsed.top_k, 100) if post_filtered else parsed.top_k)
            with tablestore_errors("searching memories"):
                response = await store.vector_search(
                    query_vector=vector,
                    top_k=top_k,
                    tenant_id=tenant,
                    metadata_filter=condition,
                    meta_data_to_get=_COLUMNS,
                )
            hits = self._accepted_hits(response.hits or [], parsed)
        else:
            condition = self._search_filter(parsed)
            limit = min(_MAX_PAGE, max(parsed.top_k, 100) if post_filtered else parsed.top_k)
            next_token = None
            while len(hits) < parsed.top_k:
                with tablestore_errors("searching memories"):
                    response = await store.full_text_search(
                        query=" ".join(terms),
                        tenant_id=tenant,
                        metadata_filter=condition,
                        limit=limit,
                        next_token=next_token,
                        meta_data_to_get=_COLUMNS,
                    )
                hits.extend(self._accepted_hits(response.hits or [], parsed))
                next_token = response.next_token
                if not next_token or not post_filtered:
                    break
        return hits[: parsed.top_k]

    def _accepted_hits(
        self, document_hits: Sequence[Any], filters: SearchFilters
    ) -> list[MemoryHit]:
        hits = []
        for document_hit in document_hits:
            score = float(document_hit.score or 0.0)
            if filters.min_score is not None and score < filters.min_score:
                continue
            message, session_id, created_at = self._decode(document_hit.document)
            if filters.metadata:
                stored = message.metadata or {}
                if any(
                    stored.get(key, _MISSING) != value for key, value in filters.metadata.items()
                ):
                    continue
            hits.append(
                MemoryHit(
                    message=message,
                    score=score,
                    session_id=session_id,
                    created_at=datetime.fromtimestamp(created_at, UTC),
                )
            )
        return hits

    def _decode(self, document: Any) -> tuple[Message, str, float]:
        metadata = document.metadata or {}
        try:
            raw = metadata[_MESSAGE]
            if isinstance(raw, bytes | bytearray):
                raw = bytes(raw).decode("utf-8")
            message = Message.model_validate_json(raw)
            session_id = metadata[_SESSION_ID]
            if isinstance(session_id, bytes | bytearray):
                session_id = bytes(session_id).decode("utf-8")
            created_at = float(metadata[_CREATED_AT])
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(
                f"Tablestore row {document.document_id!r} is not an agentmem memory: {exc}"
            ) from exc
        return message, str(session_id), created_at

    async def _rows(
        self, store: Any, tenant: str, condition: Any, columns: list[str]
    ) -> AsyncIterator[Any]:
        """Every row of a user matching ``condition``, in primary-key (time) order."""
        next_token = None
        while True:
            with tablestore_errors("listing memories"):
                response = await store.search_documents(
                    tenant_id=tenant,
                    metadata_filter=condition,
                    limit=_MAX_PAGE,
                    next_token=next_token,
                    meta_data_to_get=columns,
                )
            for hit in response.hits or []:
                yield hit.document
            next_token = response.next_token
            if not next_token:
                return

    @override
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        store = self._require_store()
        rows = self._rows(store, id_key(user_id), self._session_filter(page.session_id), _COLUMNS)
        window: list[Message] = []
        position = itertools.count()
        async for document in rows:
            index = next(position)
            if index < page.offset:
                continue
            window.append(self._decode(document)[0])
            if len(window) == page.page_size:
                break
        return window

    @override
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        store = self._require_store()
        tenant = id_key(user_id)
        columns = ["document_id", "tenant_id"]
        ids = [
            doc.document_id
            async for doc in self._rows(store, tenant, self._session_filter(session_id), columns)
        ]
        for start in range(0, len(ids), _DELETE_CONCURRENCY):
            chunk = ids[start : start + _DELETE_CONCURRENCY]
            with tablestore_errors("deleting memories"):
                await asyncio.gather(
                    *(store.delete_document(document_id, tenant) for document_id in chunk)
                )


_MISSING = object()
