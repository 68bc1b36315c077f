"""Memories in mem0: the hosted platform (``AsyncMemoryClient``) or its open-source engine.

Sessions map to mem0's ``run_id``. With ``infer=False`` every message is stored as one
mem0 memory whose metadata carries the whole message, so it comes back unchanged; with
``infer=True`` (mem0's default) mem0's LLM extracts facts from the messages and those
facts come back as assistant messages.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from typing_extensions import override

from agentmem._validation import (
    DEFAULT_SESSION_ID,
    check_id,
    check_optional_id,
    parse_list_filters,
    parse_search_filters,
)
from agentmem.errors import (
    BackendError,
    CorruptDataError,
    MissingExtraError,
    ServiceNotStartedError,
)
from agentmem.schemas.agent_schemas import Message, TextContent, to_messages
from agentmem.search.analysis import analyze
from agentmem.search.ranking import SearchFilters
from agentmem.services.memory.memory_service import MemoryHit, MemoryService, query_text
from agentmem.services.utils import MicrosecondClock

__all__ = ["Mem0MemoryService"]

# Metadata keys agentmem adds to each mem0 memory.
_MESSAGE = "agentmem_message"
_CREATED_AT = "agentmem_created_at"
_ORDER = "agentmem_order"

# mem0 reads an id of "*" as "any id"; such ids, and those that could be mistaken for
# an escaped one, are sent with this prefix.
_ESCAPE = "agentmem-escaped:"

# Memories read per request when listing everything of a user.
_PAGE = 100
# How many memories a search asks mem0 for when agentmem filters its results further.
_SEARCH_POOL = 100


def _import_mem0(feature: str) -> Any:
    try:
        import mem0
    except ImportError as exc:
        raise MissingExtraError(feature, "mem0", exc.name) from exc
    return mem0


def _wire_id(value: str) -> str:
    """The id sent to mem0: ``value`` itself unless mem0 would read it as a wildcard."""
    return _ESCAPE + value if value == "*" or value.startswith(_ESCAPE) else value


class Mem0MemoryService(MemoryService):
    """Memories in mem0; needs ``agentmem[mem0]`` (``mem0ai`` 0.1.117 to 1.x).

    Two engines:

    * the hosted platform: give ``api_key`` (or set ``MEM0_API_KEY``), optionally
      ``host``, ``org_id`` and ``project_id``. ``start()`` builds mem0's
      ``AsyncMemoryClient``, whose constructor checks the key with a blocking request;
      it runs in a worker thread, and an unreachable platform or a refused key raises
      :class:`BackendError`.
    * the open-source engine: give ``memory``, a ``mem0.AsyncMemory`` you configured
      (vector store, embedder and, for ``infer=True``, an LLM). The service borrows it
      and makes one call to it at a time, as its local vector stores need.

    ``infer=False`` stores messages as they are: this is the mode that satisfies
    agentmem's contract (every field survives, listing returns what was added). With
    ``infer=True`` mem0's LLM turns messages into facts, which are what listing and
    search then return.

    User and session ids go to mem0 as they are, except ``"*"`` (which mem0 reads as
    "any id") and ids starting with ``"agentmem-escaped:"``, which get that prefix.

    How it differs from the in-memory backend: search ranks by mem0's vector similarity
    (no ``"ranked_search"`` capability) and then keeps only memories sharing a term with
    the query, as agentmem's contract requires; time, metadata and score filters are
    applied to the best 100 (or ``top_k``) memories mem0 returns; listing reads all of a
    user's memories (one request per 100 on the platform) to order them by time. The
    platform processes additions in the background, so they may be listed a moment
    later.

    mem0 sends anonymous usage data to PostHog unless ``MEM0_TELEMETRY=False`` is set
    before mem0 is imported.

    Cost per call on the platform: ``add_memory`` one request per message with
    ``infer=False`` (one per call with ``infer=True``, plus mem0's LLM work);
    ``search_memory`` one request (and an embedding); ``list_memory`` one request per
    100 memories of the user; ``delete_memory`` one request.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"list_by_session", "delete_by_session"})

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        memory: Any = None,
        infer: bool = True,
    ) -> None:
        if memory is not None and (api_key or host or org_id or project_id):
            raise ValueError("give memory (an open-source AsyncMemory) or platform options")
        if (org_id is None) != (project_id is None):
            raise ValueError("org_id and project_id go together")
        if not isinstance(infer, bool):
            raise TypeError(f"infer must be a bool, got {type(infer).__name__}")
        if memory is None and not (api_key or os.environ.get("MEM0_API_KEY")):
            raise ValueError(
                "give api_key (or set MEM0_API_KEY) for the mem0 platform, "
                "or memory for mem0's open-source engine"
            )
        _import_mem0(type(self).__name__)
        self._api_key = api_key
        self._host = host
        self._org_id = org_id
        self._project_id = project_id
        self._memory = memory
        self._infer = infer
        self._client: Any = None
        self._clock = MicrosecondClock()
        self._engine_lock = asyncio.Lock()

    @property
    def infer(self) -> bool:
        return self._infer

    @override
    async def start(self) -> None:
        """Connect to the platform (checking the key), or adopt the local engine."""
        if self._client is not None:
            return
        if self._memory is not None:
            self._client = self._memory
            return
        from mem0 import AsyncMemoryClient

        def connect() -> Any:
            return AsyncMemoryClient(
                api_key=self._api_key,
                host=self._host,
                org_id=self._org_id,
                project_id=self._project_id,
            )

        try:
            self._client = await asyncio.to_thread(connect)
        except Exception as exc:
            raise BackendError(
                f"cannot use the mem0 platform at {self._host or 'https://api.mem0.ai'}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @override
    async def stop(self) -> None:
        """Close the platform client's connections; a borrowed engine stays open."""
        client, self._client = self._client, None
        if client is not None and client is not self._memory:
            await client.async_client.aclose()

    @override
    async def health(self) -> bool:
        """Whether the service is started (the platform's key was accepted then)."""
        return self._client is not None

    @property
    def _local(self) -> bool:
        return self._memory is not None

    async def _call(self, action: str, call: Awaitable[Any]) -> Any:
        """Await one mem0 call, mapping its failures to :class:`BackendError`."""
        try:
            if self._local:
                # The open-source engine runs its vector store in worker threads, and a
                # local Qdrant crashes under concurrent writes: one call at a time.
                async with self._engine_lock:
                    return await call
            return await call
        except (TypeError, BackendError):
            raise
        except Exception as exc:  # httpx, requests, qdrant, sqlite and mem0's own errors
            raise BackendError(f"mem0 {action} failed: {type(exc).__name__}: {exc}") from exc

    def _require_client(self) -> Any:
        if self._client is None:
            raise ServiceNotStartedError(self)
        return self._client

    def _filters(self, user_id: str, session_id: str | None) -> dict[str, Any]:
        scope: list[dict[str, str]] = [{"user_id": user_id}]
        if session_id is not None:
            scope.append({"run_id": session_id})
        return {"AND": scope}

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
        client = self._require_client()
        if not parsed:
            return
        user, run = _wire_id(user_id), _wire_id(session)
        first = self._clock.take(len(parsed))
        created_at = first / 1_000_000
        if self._infer:
            payload = [self._wire_message(message) for message in parsed]
            shared: dict[str, Any] = {_CREATED_AT: created_at, _ORDER: first}
            await self._call(
                "adding memories",
                client.add(payload, user_id=user, run_id=run, metadata=shared, infer=True),
            )
            return
        for offset, message in enumerate(parsed):
            metadata: dict[str, Any] = {
                _MESSAGE: message.model_dump_json(),
                _CREATED_AT: (first + offset) / 1_000_000,
                _ORDER: first + offset,
            }
            wire = [self._wire_message(message)]
            await self._call(
                "adding memories",
                client.add(wire, user_id=user, run_id=run, metadata=metadata, infer=False),
            )

    @staticmethod
    def _wire_message(message: Message) -> dict[str, str]:
        # mem0 skips system messages when storing as-is, and knows no other roles.
        role = "assistant" if message.role == "assistant" else "user"
        return {"role": role, "content": message.searchable_text()}

    def _decode(self, item: Mapping[str, Any]) -> tuple[Message, str, float, int]:
        """The message, session, creation time and order key of one mem0 memory."""
        try:
            metadata = item.get("metadata") or {}
            session_id = str(item.get("run_id") or DEFAULT_SESSION_ID)
            if session_id.startswith(_ESCAPE):
                session_id = session_id[len(_ESCAPE) :]
            raw = metadata.get(_MESSAGE)
            if raw is not None:
                message = Message.model_validate_json(raw)
            else:
                message = Message(
                    id=str(item["id"]),
                    role="assistant",
                    content=[TextContent(text=str(item.get("memory", "")))],
                    metadata={"mem0_id": str(item["id"])},
                )
            if _CREATED_AT in metadata:
                created_at = float(metadata[_CREATED_AT])
            else:
                created_at = datetime.fromisoformat(str(item["created_at"])).timestamp()
            order = int(metadata.get(_ORDER, created_at * 1_000_000))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(f"mem0 memory {item.get('id')!r} cannot be read: {exc}") from exc
        return message, session_id, created_at, order

    async def _all(self, user_id: str, session_id: str | None) -> list[Mapping[str, Any]]:
        """Every memory of a user (and session), both ids as sent to mem0."""
        client = self._require_client()
        if self._local:
            run = {} if session_id is None else {"run_id": session_id}
            result = await self._call(
                "listing memories",
                client.get_all(user_id=user_id, limit=1_000_000_000, **run),
            )
            # Only exact matches, whatever the engine's filters made of the id.
            return [item for item in result.get("results", []) if item.get("user_id") == user_id]
        items: list[Mapping[str, Any]] = []
        page = 1
        while True:
            result = await self._call(
                "listing memories",
                client.get_all(
                    filters=self._filters(user_id, session_id), page=page, page_size=_PAGE
                ),
            )
            items.extend(result.get("results", []))
            if not result.get("next"):
                return [item for item in items if item.get("user_id") == user_id]
            page += 1

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
        client = self._require_client()
        terms = set(analyze(query))
        if not terms:
            return []
        pool = max(parsed.top_k, _SEARCH_POOL)
        user = _wire_id(user_id)
        session = None if parsed.session_id is None else _wire_id(parsed.session_id)
        if self._local:
            run = {} if session is None else {"run_id": session}
            result = await self._call(
                "searching memories", client.search(query, user_id=user, limit=pool, **run)
            )
        else:
            result = await self._call(
                "searching memories",
                client.search(query, filters=self._filters(user, session), top_k=pool),
            )
        ranked = []
        for item in result.get("results", []):
            if item.get("user_id") != user:
                continue
            message, session_id, created_at, order = self._decode(item)
            score = float(item.get("score") or 0.0)
            if self._accepts(message, created_at, score, parsed, terms):
                ranked.append((score, order, message, session_id, created_at))
        ranked.sort(key=lambda entry: (-entry[0], -entry[1]))
        return [
            MemoryHit(
                message=message,
                score=score,
                session_id=session_id,
                created_at=datetime.fromtimestamp(created_at, UTC),
            )
            for score, _, message, session_id, created_at in ranked[: parsed.top_k]
        ]

    @staticmethod
    def _accepts(
        message: Message, created_at: float, score: float, filters: SearchFilters, terms: set[str]
    ) -> bool:
        if not terms.intersection(analyze(message.searchable_text())):
            return False
        if filters.start_time is not None and created_at < filters.start_time:
            return False
        if filters.end_time is not None and created_at > filters.end_time:
            return False
        if filters.min_score is not None and score < filters.min_score:
            return False
        stored = message.metadata or {}
        return all(
            key in stored and stored[key] == value for key, value in filters.metadata.items()
        )

    @override
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        self._require_client()
        session = None if page.session_id is None else _wire_id(page.session_id)
        decoded = [self._decode(item) for item in await self._all(_wire_id(user_id), session)]
        decoded.sort(key=lambda entry: entry[3])
        window = decoded[page.offset : page.offset + page.page_size]
        return [message for message, _, _, _ in window]

    @override
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        client = self._require_client()
        user = _wire_id(user_id)
        run = {} if session_id is None else {"run_id": _wire_id(session_id)}
        while True:
            await self._call("deleting memories", client.delete_all(user_id=user, **run))
            if not self._local:
                return
            # The open-source engine deletes at most 100 memories per delete_all call.
            left = await self._call(
                "deleting memories", client.get_all(user_id=user, limit=1, **run)
            )
            if not left.get("results"):
                return
