"""Memories distilled by ReMe: personal memories and task experiences.

ReMe (``reme_ai``) runs flows over an LLM and an embedding model reached through
OpenAI-compatible APIs, and keeps what its LLM extracts from messages in a vector store,
one workspace per user. It does not keep the messages themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from typing_extensions import override

from agentmem._validation import (
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
from agentmem.services.memory.memory_service import MemoryHit, MemoryService, query_text
from agentmem.services.utils import id_key

__all__ = ["ReMePersonalMemoryService", "ReMeTaskMemoryService"]

# The environment variables ReMe reads its endpoints and keys from, by argument.
_ENVIRONMENT = {
    "llm_api_key": "FLOW_LLM_API_KEY",
    "llm_api_base": "FLOW_LLM_BASE_URL",
    "embedding_api_key": "FLOW_EMBEDDING_API_KEY",
    "embedding_api_base": "FLOW_EMBEDDING_BASE_URL",
}
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _import_reme(feature: str) -> None:
    try:
        import reme_ai  # noqa: F401 - only checks that the extra is installed
    except ImportError as exc:
        raise MissingExtraError(feature, "reme", exc.name) from exc


def _workspace(user_id: str) -> str:
    # ReMe's local store names files after the workspace and Elasticsearch names
    # indexes after it: a hash keeps any user id usable and apart from the others.
    return f"agentmem_{id_key(user_id)}"


class _ReMeMemoryService(MemoryService):
    """What both ReMe services share; see :class:`ReMePersonalMemoryService`."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    _summary_flow: ClassVar[str]
    _retrieve_flow: ClassVar[str]

    def __init__(
        self,
        *config: str,
        llm_api_key: str | None = None,
        llm_api_base: str | None = None,
        embedding_api_key: str | None = None,
        embedding_api_base: str | None = None,
        vector_store_backend: str | None = None,
        config_path: str | None = None,
    ) -> None:
        given = {
            "llm_api_key": llm_api_key,
            "llm_api_base": llm_api_base,
            "embedding_api_key": embedding_api_key,
            "embedding_api_base": embedding_api_base,
        }
        settings = {
            name: value or os.environ.get(_ENVIRONMENT[name]) for name, value in given.items()
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
        _import_reme(type(self).__name__)
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
        per process.
        """
        if self._app is not None:
            return
        from reme_ai.main import ReMeApp

        try:
            app = ReMeApp(*self._config, config_path=self._config_path, **self._settings)
            await app.async_start()
        except Exception as exc:
            raise BackendError(f"ReMe failed to start: {type(exc).__name__}: {exc}") from exc
        self._app = app

    @override
    async def stop(self) -> None:
        app, self._app = self._app, None
        if app is not None:
            await app.async_stop()

    @override
    async def health(self) -> bool:
        return self._app is not None

    def _require_app(self) -> Any:
        if self._app is None:
            raise ServiceNotStartedError(self)
        return self._app

    async def _flow(self, name: str, **kwargs: Any) -> Any:
        app = self._require_app()
        try:
            return await app.async_execute_flow(name=name, **kwargs)
        except Exception as exc:  # the models' HTTP errors, the vector store's errors
            raise BackendError(f"ReMe flow {name!r} failed: {type(exc).__name__}: {exc}") from exc

    @override
    async def add_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        """Let ReMe distil memories from the messages; ``session_id`` is not kept."""
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        parsed = to_messages(messages)
        self._require_app()
        if not parsed:
            return
        trajectory = [
            {
                "role": "assistant" if m.role == "assistant" else "user",
                "content": m.searchable_text(),
            }
            for m in parsed
        ]
        await self._flow(
            self._summary_flow,
            workspace_id=_workspace(user_id),
            trajectories=[{"messages": trajectory, "score": 1.0}],
        )

    def _retrieve_arguments(self, query: str) -> dict[str, Any]:
        return {"query": query}

    @override
    async def search_memory_hits(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any] | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        """ReMe's memories for the query that share a term with it, best first.

        ``session_id`` filters are refused, since ReMe keeps no session.
        """
        check_id(user_id, "user_id")
        parsed = parse_search_filters(filters)
        query = query_text(messages)
        self._require_app()
        if parsed.session_id is not None:
            raise NotImplementedError("ReMe keeps no session: search cannot filter by session_id")
        terms = set(analyze(query))
        if not terms:
            return []
        result = await self._flow(
            self._retrieve_flow,
            workspace_id=_workspace(user_id),
            top_k=parsed.top_k,
            **self._retrieve_arguments(query),
        )
        hits = []
        for item in (result.metadata or {}).get("memory_list") or []:
            message, created_at, score = self._decode(item)
            if not terms.intersection(analyze(message.searchable_text())):
                continue
            if parsed.start_time is not None and created_at < parsed.start_time:
                continue
            if parsed.end_time is not None and created_at > parsed.end_time:
                continue
            if parsed.min_score is not None and score < parsed.min_score:
                continue
            stored = message.metadata or {}
            if any(stored.get(key) != value for key, value in parsed.metadata.items()):
                continue
            hits.append(
                MemoryHit(
                    message=message,
                    score=score,
                    session_id="default",
                    created_at=datetime.fromtimestamp(created_at, UTC),
                )
            )
        return hits[: parsed.top_k]

    @staticmethod
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

    @override
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        """One page of the user's ReMe memories, oldest first.

        ``session_id`` filters are refused, since ReMe keeps no session.
        """
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        self._require_app()
        if page.session_id is not None:
            raise NotImplementedError("ReMe keeps no session: list cannot filter by session_id")
        result = await self._flow("vector_store", workspace_id=_workspace(user_id), action="list")
        items = (result.metadata or {}).get("action_result") or []
        decoded = [self._decode(item) for item in items]
        decoded.sort(key=lambda entry: (entry[1], entry[0].id))
        window = decoded[page.offset : page.offset + page.page_size]
        return [message for message, _, _ in window]

    @override
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        """Delete all of the user's memories; a ``session_id`` is refused.

        ReMe keeps no session of a memory, so deleting one session's memories cannot be
        done (rather than silently deleting nothing).
        """
        check_id(user_id, "user_id")
        check_optional_id(session_id, "session_id")
        self._require_app()
        if session_id is not None:
            raise NotImplementedError(
                "ReMe keeps no session: delete_memory can only delete all of a user's memories"
            )
        await self._flow("vector_store", workspace_id=_workspace(user_id), action="delete")


class ReMePersonalMemoryService(_ReMeMemoryService):
    """Personal memories (preferences, facts about the user) distilled by ReMe.

    Needs ``agentmem[reme]`` and an LLM and an embedding model behind OpenAI-compatible
    APIs: ``llm_api_key``/``llm_api_base`` and ``embedding_api_key``/
    ``embedding_api_base``, or the ``FLOW_LLM_API_KEY``, ``FLOW_LLM_BASE_URL``,
    ``FLOW_EMBEDDING_API_KEY`` and ``FLOW_EMBEDDING_BASE_URL`` variables. ``config``
    strings are ReMe settings (``"llm.default.model_name=qwen-plus"``);
    ``vector_store_backend`` picks ReMe's store (``"memory"`` by default, which keeps
    memories in this process only; ``"local"``, ``"qdrant"``, ``"elasticsearch"``...).

    What differs from the other backends: ReMe stores what its LLM extracts from the
    messages, not the messages; listing returns those memories as assistant messages,
    oldest first; search returns the ones ReMe retrieves for the query that share a term
    with it. ReMe keeps no session of a memory, so listing, searching or deleting by
    ``session_id`` raises ``NotImplementedError``; ``delete_memory(user_id)`` deletes
    all of the user's memories.

    Cost per call: ``add_memory`` runs ReMe's summary flow (several LLM calls, one
    embedding per memory); ``search_memory`` embeds the query (and may call the LLM);
    listing and deleting call no model.
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
