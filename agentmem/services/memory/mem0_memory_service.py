"""Memories in mem0: the hosted platform (``AsyncMemoryClient``) or its open-source engine.

Sessions map to mem0's ``run_id``. With ``infer=False`` every message is stored as one
mem0 memory whose metadata carries the whole message, so it comes back unchanged; with
``infer=True`` (mem0's default) mem0's LLM extracts facts from the messages and those
facts come back as assistant messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from typing_extensions import override

from agentmem._validation import DEFAULT_SESSION_ID, ListFilters
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message, TextContent
from agentmem.search.ranking import SearchFilters
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService
from agentmem.services.utils import MicrosecondClock, decode_message, import_extra, started
from agentmem.services.utils.memory_results import HitFilter, memory_record

__all__ = ["Mem0MemoryService"]

# Metadata keys agentmem adds to each mem0 memory.
_MESSAGE = "agentmem_message"
_CREATED_AT = "agentmem_created_at"
_ORDER = "agentmem_order"

# mem0 reads an id of "*" as "any id"; such ids, and those that could be mistaken for
# an escaped one, are sent with this prefix.
_ESCAPE = "agentmem-escaped:"

# Memories read per request when listing everything of a user on the platform; the
# open-source engine answers in one page of up to _LOCAL_LIMIT.
_PAGE = 100
_LOCAL_LIMIT = 1_000_000_000
# How many memories a search asks mem0 for when agentmem filters its results further.
_SEARCH_POOL = 100
# The user whose memories health() asks for: any id does, none is ever written.
_HEALTH_USER = "agentmem-health"


def _wire_id(value: str) -> str:
    """The id sent to mem0: ``value`` itself unless mem0 would read it as a wildcard."""
    return _ESCAPE + value if value == "*" or value.startswith(_ESCAPE) else value


def _run(session: str | None) -> dict[str, str]:
    """The open-source engine's session argument."""
    return {} if session is None else {"run_id": session}


def _platform_filters(user: str, session: str | None) -> dict[str, Any]:
    """The platform's filters for a user (and session)."""
    scope = [{"user_id": user}, *([] if session is None else [{"run_id": session}])]
    return {"AND": scope}


class _Memory(NamedTuple):
    """One mem0 memory as agentmem reads it; ``order`` is the order of adding."""

    message: Message
    session_id: str
    created_at: float
    order: int


def _decode(item: Mapping[str, Any]) -> _Memory:
    """One mem0 memory: a message agentmem stored, or a fact mem0's LLM extracted."""
    where = f"mem0 memory {item.get('id')!r}"
    metadata = item.get("metadata") or {}
    session_id = str(item.get("run_id") or DEFAULT_SESSION_ID)
    if session_id.startswith(_ESCAPE):
        session_id = session_id[len(_ESCAPE) :]
    try:
        if _MESSAGE in metadata:
            message = decode_message(metadata[_MESSAGE], where)
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
        raise CorruptDataError(f"{where} cannot be read: {exc}") from exc
    return _Memory(message, session_id, created_at, order)


class Mem0MemoryService(MemoryService):
    """Memories in mem0; needs ``agentmem-services[mem0]`` (``mem0ai`` 0.1.117 to 1.x).

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
    search then return. Both modes keep a creation time given on import.

    User and session ids go to mem0 as they are, except ``"*"`` (which mem0 reads as
    "any id") and ids starting with ``"agentmem-escaped:"``, which get that prefix.

    How it differs from the in-memory backend: search ranks by mem0's vector similarity
    (no ``"ranked_search"`` capability) and then keeps only memories sharing a term with
    the query, as agentmem's contract requires; time, metadata and score filters are
    applied to the best 100 (or ``top_k``) memories mem0 returns; listing memories or
    sessions reads all of a user's memories (one request per 100 on the platform) to
    order them by time. The platform processes additions in the background, so they may
    be listed a moment later. With ``infer=False`` each message is one request to mem0,
    so a failure part way through a call leaves the messages before it stored.

    mem0 sends anonymous usage data to PostHog unless ``MEM0_TELEMETRY=False`` is set
    before mem0 is imported.

    Cost per call on the platform: ``add_memory`` one request per message with
    ``infer=False`` (one per call with ``infer=True``, plus mem0's LLM work);
    ``search_memory`` one request (and an embedding); ``list_memory`` and
    ``list_session_ids`` one request per 100 memories of the user; ``delete_memory``
    one request; ``health`` one request.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.LIST_BY_SESSION,
            Capability.DELETE_BY_SESSION,
            Capability.LIST_SESSIONS,
            Capability.CREATION_TIME,
        }
    )

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
        import_extra(type(self).__name__, "mem0", "mem0")
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

    @property
    def _local(self) -> bool:
        return self._memory is not None

    @override
    async def start(self) -> None:
        """Connect to the platform (checking the key), or adopt the local engine."""
        if self._client is not None:
            return
        if self._local:
            self._client = self._memory
            return
        from mem0 import AsyncMemoryClient

        with self._mapped(f"connect to the mem0 platform at {self._host or 'https://api.mem0.ai'}"):
            self._client = await asyncio.to_thread(
                AsyncMemoryClient,
                api_key=self._api_key,
                host=self._host,
                org_id=self._org_id,
                project_id=self._project_id,
            )

    @override
    async def stop(self) -> None:
        """Close the platform client's connections; a borrowed engine stays open."""
        client, self._client = self._client, None
        if client is not None and not self._local:
            await client.async_client.aclose()

    @contextlib.asynccontextmanager
    async def _engine(self) -> AsyncIterator[Any]:
        """The client, held alone while in use when it is the open-source engine."""
        client = started(self, self._client)
        # The open-source engine runs its vector store in worker threads, and a local
        # Qdrant crashes under concurrent writes: one call at a time.
        async with self._engine_lock if self._local else contextlib.nullcontext():
            yield client

    async def _get_all(
        self, user: str, session: str | None, page: int, size: int
    ) -> Mapping[str, Any]:
        """One page of the memories of a user (in a session), ids as sent to mem0."""
        result: Mapping[str, Any]
        async with self._engine() as client:
            if self._local:
                result = await client.get_all(user_id=user, limit=size, **_run(session))
            else:
                scope = _platform_filters(user, session)
                result = await client.get_all(filters=scope, page=page, page_size=size)
        return result

    @override
    async def _check_health(self) -> bool:
        await self._get_all(_HEALTH_USER, None, 1, 1)
        return True

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        user, run = _wire_id(user_id), _wire_id(session_id)
        first = self._clock.take(len(messages))
        # mem0 skips system messages when storing as-is, and knows no other roles.
        wire = [
            {
                "role": "assistant" if message.role == "assistant" else "user",
                "content": message.searchable_text(),
            }
            for message in messages
        ]
        if self._infer:
            shared = {_CREATED_AT: created_at, _ORDER: first}
            async with self._engine() as client:
                await client.add(wire, user_id=user, run_id=run, metadata=shared, infer=True)
            return
        for offset, message in enumerate(messages):
            metadata = {
                _MESSAGE: message.model_dump_json(),
                _CREATED_AT: created_at,
                _ORDER: first + offset,
            }
            async with self._engine() as client:
                await client.add(
                    [wire[offset]], user_id=user, run_id=run, metadata=metadata, infer=False
                )

    async def _all(self, user_id: str, session_id: str | None) -> list[_Memory]:
        """Every memory of a user (in a session), in the order they were added."""
        user = _wire_id(user_id)
        session = None if session_id is None else _wire_id(session_id)
        items: list[Mapping[str, Any]] = []
        page = 1
        while True:
            result = await self._get_all(
                user, session, page, _LOCAL_LIMIT if self._local else _PAGE
            )
            items.extend(result.get("results", []))
            if self._local or not result.get("next"):
                break
            page += 1
        # Only exact matches, whatever mem0's filters made of the id.
        memories = [_decode(item) for item in items if item.get("user_id") == user]
        return sorted(memories, key=lambda memory: memory.order)

    @override
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        accepted = HitFilter(query, filters)
        if not accepted.terms:
            return []
        pool = max(filters.top_k, _SEARCH_POOL)
        user = _wire_id(user_id)
        session = None if filters.session_id is None else _wire_id(filters.session_id)
        async with self._engine() as client:
            if self._local:
                result = await client.search(query, user_id=user, limit=pool, **_run(session))
            else:
                scope = _platform_filters(user, session)
                result = await client.search(query, filters=scope, top_k=pool)
        ranked: list[tuple[int, MemoryHit]] = []
        for item in result.get("results", []):
            if item.get("user_id") != user:
                continue
            memory = _decode(item)
            score = float(item.get("score") or 0.0)
            hit = accepted.hit(memory.message, memory.session_id, memory.created_at, score)
            if hit is not None:
                ranked.append((memory.order, hit))
        ranked.sort(key=lambda entry: (-entry[1].score, -entry[0]))
        return [hit for _, hit in ranked[: filters.top_k]]

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        memories = await self._all(user_id, page.session_id)
        window = memories[page.offset : page.offset + page.page_size]
        return [
            memory_record(memory.message, memory.session_id, memory.created_at) for memory in window
        ]

    @override
    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        return list(dict.fromkeys(memory.session_id for memory in await self._all(user_id, None)))

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        user = _wire_id(user_id)
        session = None if session_id is None else _wire_id(session_id)
        while True:
            async with self._engine() as client:
                await client.delete_all(user_id=user, **_run(session))
            # The open-source engine deletes at most 100 memories per delete_all call.
            if not self._local or not (await self._get_all(user, session, 1, 1)).get("results"):
                return
