"""The abstract memory service: long-term memories of users, grouped by session.

:class:`MemoryService` holds the whole contract: its public methods validate and copy
their arguments (:mod:`agentmem._validation`, limits in :mod:`agentmem.limits`), map
the backend's errors and call a small storage core, the ``_``-prefixed abstract methods,
which are all a backend implements.
"""

from __future__ import annotations

import html
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from agentmem._validation import (
    ListFilters,
    check_created_at,
    check_id,
    check_messages,
    check_optional_id,
    parse_list_filters,
    parse_search_filters,
    session_or_default,
)
from agentmem.errors import InvalidArgumentError
from agentmem.schemas.agent_schemas import Message, MessageType, TextContent, to_messages
from agentmem.search.ranking import SearchFilters
from agentmem.services.base import Capability, ServiceWithLifecycleManager

__all__ = ["MemoryHit", "MemoryRecord", "MemoryService", "query_text"]

MessagesArg = Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any]
QueryArg = MessagesArg | str | None


class MemoryRecord(BaseModel):
    """One stored memory: the message, its session and when it was stored."""

    model_config = ConfigDict(frozen=True)

    message: Message
    session_id: str
    created_at: datetime


class MemoryHit(MemoryRecord):
    """One search result: a stored memory and its relevance."""

    score: float

    def _repr_markdown_(self) -> str:
        return (
            f"`{self.score:.3f}` · session `{html.escape(self.session_id)}` · "
            f"{self.message._repr_markdown_()}"
        )


def query_text(messages: object) -> str:
    """The text searched for: that of the last message (a plain string is taken as is).

    ``None``, like an empty list, holds no query: the search finds nothing.
    """
    if messages is None:
        return ""
    if isinstance(messages, str):
        return messages
    try:
        parsed = to_messages(messages)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError("messages", str(exc)) from None
    return parsed[-1].searchable_text() if parsed else ""


class MemoryService(ServiceWithLifecycleManager):
    """Long-term memory: messages stored per user, grouped by session, searchable.

    Every method takes the user id first; one user never sees another's memories.
    Messages may be given as :class:`Message` objects or plain dicts. Memories added
    without a ``session_id`` go to the session ``"default"``. Bad arguments raise
    :class:`agentmem.errors.InvalidArgumentError` (a ``ValueError`` and a ``TypeError``)
    and store nothing, on every backend; storage failures raise
    :class:`agentmem.errors.BackendError`. Stored messages are copies: changing a message
    after adding it, or a returned one, changes nothing stored.

    A backend implements the storage core: :meth:`_add_memories`,
    :meth:`_search_memories`, :meth:`_list_memories`, :meth:`_delete_memories` and,
    where it offers them, :meth:`_list_memory_sessions` and :meth:`_clear_all`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.RANKED_SEARCH,
            Capability.LIST_BY_SESSION,
            Capability.DELETE_BY_SESSION,
            Capability.LIST_SESSIONS,
            Capability.CREATION_TIME,
            Capability.CLEAR_ALL,
        }
    )

    async def add_memory(
        self,
        user_id: str,
        messages: MessagesArg,
        session_id: str | None = None,
        *,
        created_at: datetime | float | None = None,
    ) -> None:
        """Store messages for a user, in order, all or none.

        ``created_at`` (a datetime, naive meaning UTC, or Unix seconds; default now) is
        the creation time of all of them, for imports that keep the original times;
        backends without :attr:`Capability.CREATION_TIME` refuse it.
        """
        check_id(user_id, "user_id")
        session = session_or_default(session_id)
        parsed = check_messages(messages)
        when = check_created_at(created_at)
        if when is not None:
            self._require(Capability.CREATION_TIME, "store a given creation time")
        if not parsed:
            return
        with self._mapped("add memories"):
            await self._add_memories(
                user_id, session, parsed, time.time() if when is None else when
            )

    async def search_memory_hits(
        self,
        user_id: str,
        messages: QueryArg,
        filters: Mapping[str, Any] | None = None,
    ) -> list[MemoryHit]:
        """Memories relevant to the text of the last message, best first, with scores.

        ``filters``: ``top_k`` (default 100), ``session_id``, ``start_time``/``end_time``
        (datetime or Unix seconds, inclusive), ``metadata`` (key/values a memory's
        metadata must hold) and ``min_score``. With the default lexical search a memory
        is returned only if it shares a term with the query; a backend given an
        embedder also returns memories close in meaning. Equal scores put the newer
        memory first.
        """
        check_id(user_id, "user_id")
        parsed_filters = parse_search_filters(filters)
        query = query_text(messages)
        if not query:
            return []
        with self._mapped("search memories"):
            return await self._search_memories(user_id, query, parsed_filters)

    async def search_memory(
        self,
        user_id: str,
        messages: QueryArg,
        filters: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """The messages of :meth:`search_memory_hits`, best first."""
        return [hit.message for hit in await self.search_memory_hits(user_id, messages, filters)]

    async def list_memory_records(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[MemoryRecord]:
        """One page of a user's memories with their sessions and times, oldest first.

        ``filters`` as for :meth:`list_memory`.
        """
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        if page.session_id is not None:
            self._require(Capability.LIST_BY_SESSION, "list one session's memories")
        with self._mapped("list memories"):
            return await self._list_memories(user_id, page)

    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        """One page of a user's memories, oldest first.

        ``filters``: ``page_num`` (from 1, default 1), ``page_size`` (default 10, at most
        :data:`~agentmem.limits.MAX_PAGE_SIZE`) and ``session_id``.
        """
        return [record.message for record in await self.list_memory_records(user_id, filters)]

    async def list_session_ids(self, user_id: str) -> list[str]:
        """The ids of the sessions the user has memories in, in the order first used."""
        check_id(user_id, "user_id")
        self._require(Capability.LIST_SESSIONS, "list a user's sessions")
        with self._mapped("list sessions"):
            return await self._list_memory_sessions(user_id)

    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        """Delete one session's memories, or all of the user's when ``session_id`` is None.

        Deleting what does not exist is not an error.
        """
        check_id(user_id, "user_id")
        session = check_optional_id(session_id, "session_id")
        if session is not None:
            self._require(Capability.DELETE_BY_SESSION, "delete one session's memories")
        with self._mapped("delete memories"):
            await self._delete_memories(user_id, session)

    async def delete_user_memory(self, user_id: str) -> None:
        """Delete all of a user's memories (AgentScope Runtime 1.0's name)."""
        await self.delete_memory(user_id)

    async def clear_all_memory(self) -> None:
        """Delete every user's memories in this service's namespace."""
        self._require(Capability.CLEAR_ALL, "clear every user's memories")
        with self._mapped("clear all memories"):
            await self._clear_all()

    async def get_query_text(self, message: Message | Mapping[str, Any] | None) -> str:
        """The text of the first text part of a ``"message"``-type message, else ``""``.

        AgentScope Runtime 1.0's query rule, kept for code that calls it; the services
        themselves search the text of all parts (:func:`query_text`).
        """
        if not message:
            return ""
        parsed = check_messages(message, "message")[0]
        if parsed.type != MessageType.MESSAGE:
            return ""
        for part in parsed.content or ():
            if isinstance(part, TextContent):
                return part.text or ""
        return ""

    @abstractmethod
    async def _check_health(self) -> bool:
        """One round trip to the storage, as :meth:`health` describes."""

    # The storage core. Arguments arrive validated: ids checked, ``session_id`` resolved,
    # messages copied (the backend may keep them), filters parsed.

    @abstractmethod
    async def _add_memories(
        self, user_id: str, session_id: str, messages: list[Message], created_at: float
    ) -> None:
        """Store ``messages`` (at least one) in order, all or none, created at
        ``created_at`` (Unix seconds)."""

    @abstractmethod
    async def _search_memories(
        self, user_id: str, query: str, filters: SearchFilters
    ) -> list[MemoryHit]:
        """The hits for a non-empty ``query``, best first, at most ``filters.top_k``."""

    @abstractmethod
    async def _list_memories(self, user_id: str, page: ListFilters) -> list[MemoryRecord]:
        """The page ``page`` of the user's memories (of ``page.session_id`` if set)."""

    @abstractmethod
    async def _delete_memories(self, user_id: str, session_id: str | None) -> None:
        """Delete the session's memories, or all of the user's for None."""

    async def _list_memory_sessions(self, user_id: str) -> list[str]:
        """The user's session ids in the order first used (backends with LIST_SESSIONS)."""
        raise NotImplementedError

    async def _clear_all(self) -> None:
        """Delete every user's memories (backends with CLEAR_ALL)."""
        raise NotImplementedError


def __getattr__(name: str) -> Any:
    # AgentScope Runtime 1.0 defined the in-memory backend in this module.
    if name == "InMemoryMemoryService":
        from agentmem.services.memory.in_memory_memory_service import InMemoryMemoryService

        return InMemoryMemoryService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
