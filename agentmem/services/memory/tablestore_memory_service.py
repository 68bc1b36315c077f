"""Memories in Alibaba Cloud Tablestore, through ``tablestore-for-agent-memory``.

One Tablestore row per message in a knowledge-store table; a search index over it
serves listing (by primary key, which starts with the time of writing) and search
(full text over agentmem's analysed terms, or vectors from an :class:`Embedder`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from enum import StrEnum
from typing import Any, ClassVar

from typing_extensions import Unpack, override

from agentmem._validation import ListFilters, check_id
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message
from agentmem.search.analysis import analyze
from agentmem.search.embeddings import Embedder, embed_texts
from agentmem.search.ranking import SearchFilters
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService
from agentmem.services.utils import MicrosecondClock, decode_message, id_key, stored_text
from agentmem.services.utils.memory_results import HitFilter, memory_record
from agentmem.services.utils.tablestore_service_utils import (
    TablestoreConnection,
    TablestoreCredentials,
    for_each,
    write_all,
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
# Rows a search asks for when filters applied afterwards may drop some.
_POST_FILTER_POOL = 100


class SearchStrategy(StrEnum):
    """How :class:`TablestoreMemoryService` searches.

    ``FULL_TEXT`` matches agentmem's analysed terms (stemmed, stop words dropped) with
    Tablestore's full-text index; ``VECTOR`` ranks the memories that share a term with
    the query by the cosine similarity of their embeddings.
    """

    FULL_TEXT = "full_text"
    VECTOR = "vector"


def _knowledge_store() -> Any:
    from tablestore_for_agent_memory.knowledge.async_knowledge_store import (
        AsyncKnowledgeStore,
    )

    return AsyncKnowledgeStore


def _decode(document: Any) -> tuple[Message, str, float]:
    """The message, session id and creation time of a memory row."""
    where = f"Tablestore memory row {document.document_id!r}"
    metadata = document.metadata or {}
    message = decode_message(metadata.get(_MESSAGE), where)
    session_id = stored_text(metadata.get(_SESSION_ID), f"{where} (session id)")
    created_at = metadata.get(_CREATED_AT)
    if isinstance(created_at, bool) or not isinstance(created_at, int | float):
        raise CorruptDataError(f"{where} has no creation time")
    return message, session_id, float(created_at)


def _hits(document_hits: Sequence[Any] | None, accepted: HitFilter) -> list[MemoryHit]:
    """The hits of a search response that ``accepted`` keeps, in the response's order."""
    hits = []
    for document_hit in document_hits or ():
        message, session_id, created_at = _decode(document_hit.document)
        hit = accepted.hit(message, session_id, created_at, float(document_hit.score or 0.0))
        if hit is not None:
            hits.append(hit)
    return hits


class TablestoreMemoryService(MemoryService):
    """Memories in a Tablestore table with a search index.

    Needs ``agentmem-services[tablestore]``.

    Give either ``tablestore_client`` (an ``AsyncOTSClient``, borrowed: the service
    never closes it) or ``end_point``, ``instance_name``, ``access_key_id`` and
    ``access_key_secret`` (the service then builds, owns and closes its client).
    ``start()`` creates the table and its search index if they do not exist.

    Each message is one row keyed by a hash of its user id, so ids of any length or
    characters are kept apart; the whole message is stored as JSON in one column, so
    every field (``metadata``, ``usage``...) survives as it was, and so does a creation
    time given on import.

    How it differs from the in-memory backend:

    * Listing and search read Tablestore's search index, which follows writes after a
      short delay (typically a few seconds): a memory just added may not be listed or
      found at once, and deleting reaches only the memories already indexed.
    * Results are ranked by Tablestore's own scoring, not agentmem's shared ranking
      (no ``"ranked_search"`` capability); memories still must share a term with the
      query, with agentmem's stemming and stop words.
    * ``metadata`` filters and ``min_score`` are applied to the rows Tablestore returns,
      so a search reads more rows when they are given.
    * ``list_memory`` pages by reading the rows before the requested page, and
      ``list_session_ids`` reads all of the user's rows.
    * Rows are written one by one: when a write fails, the rows the call wrote are
      deleted again, so the call stores nothing unless that deletion fails too.

    ``store_factory`` replaces ``AsyncKnowledgeStore``: it is called with that class's
    keyword arguments (a subclass, or an in-memory stand-in for tests).

    ``search_strategy=SearchStrategy.VECTOR`` needs an ``embedder`` (an
    :class:`agentmem.search.Embedder`) and numpy (``agentmem-services[vectors]``); texts
    are embedded only in that mode. ``vector_dimension`` (default: ``embedder.dimension``,
    else 1024) sizes the index's vector field when the index is created.

    Cost per call, in Tablestore requests: ``add_memory`` one write per message;
    ``search_memory`` one search (more with post-filters) plus, in vector mode, one
    embedding; ``list_memory`` one search per 1000 rows up to the page;
    ``list_session_ids`` one search per 1000 rows of the user; deleting one search per
    1000 rows plus one delete per row; ``clear_all_memory`` one range read and one
    batch delete per 200 rows of the table.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.LIST_BY_SESSION,
            Capability.DELETE_BY_SESSION,
            Capability.LIST_SESSIONS,
            Capability.CREATION_TIME,
            Capability.CLEAR_ALL,
        }
    )

    def __init__(
        self,
        tablestore_client: Any = None,
        *,
        search_strategy: SearchStrategy | str = SearchStrategy.FULL_TEXT,
        embedder: Embedder | None = None,
        vector_dimension: int | None = None,
        table_name: str = "agentmem_memory",
        search_index_name: str = "agentmem_memory_search_index",
        store_factory: Callable[..., Any] | None = None,
        **credentials: Unpack[TablestoreCredentials],
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
        self._table_name = check_id(table_name, "table_name")
        self._search_index_name = check_id(search_index_name, "search_index_name")
        self._tablestore = TablestoreConnection(self, tablestore_client, credentials, store_factory)
        self._embedder = embedder if self._strategy is SearchStrategy.VECTOR else None
        self._dimension = dimension
        self._clock = MicrosecondClock()

    @property
    def search_strategy(self) -> SearchStrategy:
        return self._strategy

    @override
    async def start(self) -> None:
        """Create the table and search index if missing; idempotent.

        Raises :class:`BackendError` when Tablestore cannot be reached.
        """
        import tablestore

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
        with self._mapped("create the memory table"):
            await self._tablestore.open(
                _knowledge_store,
                vector_dimension=self._dimension,
                enable_multi_tenant=True,
                table_name=self._table_name,
                search_index_name=self._search_index_name,
                search_index_schema=schema,
                text_field=_TERMS,
                embedding_field=_EMBEDDING,
            )

    @override
    async def stop(self) -> None:
        """Forget the store; close the client if the service built it."""
        await self._tablestore.close()

    @override
    async def _check_health(self) -> bool:
        await self._tablestore.store.search_documents(
            tenant_id=id_key("health"), limit=1, meta_data_to_get=["document_id"]
        )
        return True

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        from tablestore_for_agent_memory.base.base_knowledge_store import Document

        store = self._tablestore.store
        embeddings: list[list[float] | None] = [None] * len(messages)
        if self._embedder is not None:
            vectors = await embed_texts(self._embedder, [m.searchable_text() for m in messages])
            embeddings = [[float(x) for x in vector] for vector in vectors]
        tenant = id_key(user_id)
        first = self._clock.take(len(messages))
        documents = [
            Document(
                # Rows list in primary-key order, so the id starts with the time of writing.
                document_id=f"{first + offset:017d}-{uuid.uuid4().hex}",
                tenant_id=tenant,
                text=" ".join(analyze(message.searchable_text())) or None,
                embedding=embedding,
                metadata={
                    _SESSION_KEY: id_key(session_id),
                    _SESSION_ID: session_id,
                    _CREATED_AT: created_at,
                    _MESSAGE: message.model_dump_json(),
                },
            )
            for offset, (message, embedding) in enumerate(zip(messages, embeddings, strict=True))
        ]
        await write_all(
            documents,
            store.put_document,
            lambda document: store.delete_document(document.document_id, tenant),
        )

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
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        store = self._tablestore.store
        accepted = HitFilter(query, filters)
        if not accepted.terms:
            return []
        tenant = id_key(user_id)
        post_filtered = bool(filters.metadata) or filters.min_score is not None
        limit = min(
            _MAX_PAGE, max(filters.top_k, _POST_FILTER_POOL) if post_filtered else filters.top_k
        )
        hits: list[MemoryHit] = []
        if self._embedder is not None:
            from tablestore_for_agent_memory.base.filter import Filters

            [unit] = await embed_texts(self._embedder, [query])
            # The nearest neighbours are taken among the memories sharing a term.
            condition = self._search_filter(
                filters, Filters.text_match(_TERMS, " ".join(accepted.terms))
            )
            response = await store.vector_search(
                query_vector=[float(x) for x in unit],
                top_k=limit,
                tenant_id=tenant,
                metadata_filter=condition,
                meta_data_to_get=_COLUMNS,
            )
            hits = _hits(response.hits, accepted)
        else:
            condition = self._search_filter(filters)
            next_token = None
            while len(hits) < filters.top_k:
                response = await store.full_text_search(
                    query=" ".join(accepted.terms),
                    tenant_id=tenant,
                    metadata_filter=condition,
                    limit=limit,
                    next_token=next_token,
                    meta_data_to_get=_COLUMNS,
                )
                hits.extend(_hits(response.hits, accepted))
                next_token = response.next_token
                if not next_token or not post_filtered:
                    break
        return hits[: filters.top_k]

    async def _rows(
        self, user_id: str, session_id: str | None, columns: list[str]
    ) -> AsyncIterator[Any]:
        """Every row of the user (in the session, if given), in primary-key (time) order."""
        store = self._tablestore.store
        next_token = None
        while True:
            response = await store.search_documents(
                tenant_id=id_key(user_id),
                metadata_filter=self._session_filter(session_id),
                limit=_MAX_PAGE,
                next_token=next_token,
                meta_data_to_get=columns,
            )
            for hit in response.hits or ():
                yield hit.document
            next_token = response.next_token
            if not next_token:
                return

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        window: list[MemoryRecord] = []
        position = 0
        async for document in self._rows(user_id, page.session_id, _COLUMNS):
            if position >= page.offset:
                window.append(memory_record(*_decode(document)))
                if len(window) == page.page_size:
                    break
            position += 1
        return window

    @override
    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        sessions: dict[str, None] = {}
        async for document in self._rows(user_id, None, ["document_id", _SESSION_ID]):
            where = f"Tablestore memory row {document.document_id!r} (session id)"
            sessions.setdefault(stored_text((document.metadata or {}).get(_SESSION_ID), where))
        return list(sessions)

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        store = self._tablestore.store
        tenant = id_key(user_id)
        columns = ["document_id", "tenant_id"]
        ids = [doc.document_id async for doc in self._rows(user_id, session_id, columns)]
        await for_each(ids, lambda document_id: store.delete_document(document_id, tenant))

    @override
    async def _clear_all(self) -> None:
        await self._tablestore.store.delete_all_documents()
