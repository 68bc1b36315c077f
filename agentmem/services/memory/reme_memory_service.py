"""Memories distilled by ReMe: personal memories and task experiences.

ReMe (``reme_ai``) runs flows over an LLM and an embedding model reached through
OpenAI-compatible APIs, and keeps what its LLM extracts from messages in a vector store,
one workspace per user. It does not keep the messages themselves.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, ClassVar, TypedDict

from typing_extensions import Unpack, override

from agentmem._validation import DEFAULT_SESSION_ID, ListFilters
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message, TextContent
from agentmem.search.ranking import SearchFilters
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryHit, MemoryRecord, MemoryService
from agentmem.services.utils import id_key, import_extra, started
from agentmem.services.utils.memory_results import HitFilter, memory_record

__all__ = ["ReMeEndpoints", "ReMePersonalMemoryService", "ReMeTaskMemoryService"]

# The environment variables ReMe reads its endpoints and keys from, by argument.
_ENVIRONMENT = {
    "llm_api_key": "FLOW_LLM_API_KEY",
    "llm_api_base": "FLOW_LLM_BASE_URL",
    "embedding_api_key": "FLOW_EMBEDDING_API_KEY",
    "embedding_api_base": "FLOW_EMBEDDING_BASE_URL",
}
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The user whose workspace health() looks for: any id does, none is ever written.
_HEALTH_USER = "agentmem-health"


class ReMeEndpoints(TypedDict, total=False):
    """The LLM and embedding model ReMe calls, behind OpenAI-compatible APIs; each one not
    given is read from its ``FLOW_*`` variable."""

    llm_api_key: str
    llm_api_base: str
    embedding_api_key: str
    embedding_api_base: str


def _workspace(user_id: str) -> str:
    # ReMe's local store names files after the workspace and Elasticsearch names
    # indexes after it: a hash keeps any user id usable and apart from the others.
    return f"agentmem_{id_key(user_id)}"


def _decode(item: Any) -> tuple[Message, float, float]:
    """The message, creation time and score of one ReMe memory (object or dict)."""
    data = item.model_dump() if hasattr(item, "model_dump") else item
    try:
        content = data.get("content") or ""
        if isinstance(content, bytes):
            content = content.decode("utf-8")
        created = datetime.strptime(str(data["time_created"]), _TIME_FORMAT)
        message = Message(
            id=str(data["memory_id"]),
            role="assistant",
            content=[TextContent(text=str(content))],
            metadata={
                "reme_memory_id": str(data["memory_id"]),
                "reme_memory_type": str(data.get("memory_type", "")),
                "when_to_use": str(data.get("when_to_use", "")),
            },
        )
        score = float(data.get("score") or 0.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptDataError(f"ReMe memory {data!r} cannot be read: {exc}") from exc
    # ReMe writes local time without a zone.
    return message, created.timestamp(), score


class _ReMeMemoryService(MemoryService):
    """What both ReMe services share; see :class:`ReMePersonalMemoryService`."""

    # ReMe keeps no session, no time but its own and no index of users.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    _summary_flow: ClassVar[str]
    _retrieve_flow: ClassVar[str]

    def __init__(
        self,
        *config: str,
        vector_store_backend: str | None = None,
        config_path: str | None = None,
        **endpoints: Unpack[ReMeEndpoints],
    ) -> None:
        unknown = sorted(set(endpoints) - set(_ENVIRONMENT))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {unknown}")
        settings = {
            name: endpoints.get(name) or os.environ.get(variable)
            for name, variable in _ENVIRONMENT.items()
        }
        missing = [_ENVIRONMENT[name] for name, value in settings.items() if not value]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs an LLM and an embedding endpoint: set "
                f"{', '.join(missing)} (or pass the matching arguments)"
            )
        for item in config:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"ReMe settings look like 'key=value', got {item!r}")
        import_extra(type(self).__name__, "reme", "reme_ai")
        self._settings = settings
        self._config = list(config)
        if vector_store_backend is not None:
            self._config.append(f"vector_store.default.backend={vector_store_backend}")
        self._config_path = config_path
        self._app: Any = None

    @override
    async def start(self) -> None:
        """Start ReMe (its flows, models and vector store); idempotent.

        ReMe keeps its configuration in process-wide state: run one ReMe configuration
        per process. Raises :class:`BackendError` when ReMe cannot start.
        """
        if self._app is not None:
            return
        from reme_ai.main import ReMeApp

        with self._mapped("start ReMe"):
            app = ReMeApp(*self._config, config_path=self._config_path, **self._settings)
            await app.async_start()
        self._app = app

    @override
    async def stop(self) -> None:
        app, self._app = self._app, None
        if app is not None:
            await app.async_stop()

    @override
    async def _check_health(self) -> bool:
        started(self, self._app)
        from flowllm.core.context import C

        # The store ReMe's flows use ("default" in its configuration); asking whether a
        # workspace exists is a round trip that fails for no missing workspace.
        await C.vector_store_dict["default"].async_exist_workspace(_workspace(_HEALTH_USER))
        return True

    async def _flow(self, name: str, user_id: str, **arguments: Any) -> Any:
        """Run one of ReMe's flows on the user's workspace."""
        app = started(self, self._app)
        return await app.async_execute_flow(
            name=name, workspace_id=_workspace(user_id), **arguments
        )

    @override
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        trajectory = [
            {
                "role": "assistant" if m.role == "assistant" else "user",
                "content": m.searchable_text(),
            }
            for m in messages
        ]
        await self._flow(
            self._summary_flow, user_id, trajectories=[{"messages": trajectory, "score": 1.0}]
        )

    def _retrieve_arguments(self, query: str) -> dict[str, Any]:
        return {"query": query}

    @override
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        if filters.session_id is not None:
            self._require(Capability.LIST_BY_SESSION, "search one session's memories")
        accepted = HitFilter(query, filters)
        if not accepted.terms:
            return []
        result = await self._flow(
            self._retrieve_flow, user_id, top_k=filters.top_k, **self._retrieve_arguments(query)
        )
        hits = []
        for item in (result.metadata or {}).get("memory_list") or []:
            message, created_at, score = _decode(item)
            hit = accepted.hit(message, DEFAULT_SESSION_ID, created_at, score)
            if hit is not None:
                hits.append(hit)
        return hits[: filters.top_k]

    @override
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        result = await self._flow("vector_store", user_id, action="list")
        items = (result.metadata or {}).get("action_result") or []
        decoded = sorted((_decode(item) for item in items), key=lambda m: (m[1], m[0].id))
        return [
            memory_record(message, DEFAULT_SESSION_ID, created_at)
            for message, created_at, _ in decoded[page.offset : page.offset + page.page_size]
        ]

    @override
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        await self._flow("vector_store", user_id, action="delete")


class ReMePersonalMemoryService(_ReMeMemoryService):
    """Personal memories (preferences, facts about the user) distilled by ReMe.

    Needs ``agentmem-services[reme]`` and an LLM and an embedding model behind
    OpenAI-compatible APIs: ``llm_api_key``/``llm_api_base`` and ``embedding_api_key``/
    ``embedding_api_base``, or the ``FLOW_LLM_API_KEY``, ``FLOW_LLM_BASE_URL``,
    ``FLOW_EMBEDDING_API_KEY`` and ``FLOW_EMBEDDING_BASE_URL`` variables. ``config``
    strings are ReMe settings (``"llm.default.model_name=qwen-plus"``);
    ``vector_store_backend`` picks ReMe's store (``"memory"`` by default, which keeps
    memories in this process only; ``"local"``, ``"qdrant"``, ``"elasticsearch"``...).

    What differs from the other backends: ReMe stores what its LLM extracts from the
    messages, not the messages; listing returns those memories as assistant messages,
    oldest first; search returns the ones ReMe retrieves for the query that share a term
    with it. ReMe keeps no session of a memory: every memory reads as being in the
    session ``"default"``, and listing, searching or deleting by ``session_id``, like
    listing a user's sessions, raises :class:`agentmem.errors.UnsupportedOperationError`
    (a ``NotImplementedError``); ``delete_memory(user_id)`` deletes all of the user's
    memories. A creation time given to ``add_memory`` is refused the same way: ReMe
    stamps its memories itself.

    Cost per call: ``add_memory`` runs ReMe's summary flow (several LLM calls, one
    embedding per memory); ``search_memory`` embeds the query (and may call the LLM);
    listing and deleting call no model; ``health`` asks the vector store whether a
    workspace exists.
    """

    _summary_flow = "summary_personal_memory"
    _retrieve_flow = "retrieve_personal_memory"


class ReMeTaskMemoryService(_ReMeMemoryService):
    """Task experiences (what worked, what failed) distilled by ReMe from trajectories.

    Configured and limited like :class:`ReMePersonalMemoryService`; the messages given
    to ``add_memory`` form one successful trajectory, and search asks ReMe for the
    experiences relevant to a task described by the query.
    """

    _summary_flow = "summary_task_memory"
    _retrieve_flow = "retrieve_task_memory"

    @override
    def _retrieve_arguments(self, query: str) -> dict[str, Any]:
        return {"query": query, "messages": [{"role": "user", "content": query}]}
