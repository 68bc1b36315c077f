"""The abstract memory service: long-term memories of users, grouped by session.

:class:`MemoryService` holds the whole contract: its public methods validate and copy
their arguments (:mod:`agentmem._validation`, limits in :mod:`agentmem.limits`), map
the backend's errors and call a small storage core, the ``_``-prefixed abstract methods,
which are all a backend implements.
"""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

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
from agentmem.schemas.agent_schemas import (
    Message,
    MessageList,
    MessageType,
    TextContent,
    to_messages,
)
from agentmem.schemas.display import Column, DisplayList, Table, format_time
from agentmem.search.ranking import ExplainedScore, ScoreExplanation, SearchFilters
from agentmem.services.base import Capability, ServiceWithLifecycleManager

__all__ = [
    "MemoryHit",
    "MemoryHitList",
    "MemoryRecord",
    "MemoryRecordList",
    "MemoryService",
    "query_text",
]

MessagesArg = Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any]
QueryArg = MessagesArg | str | None


class MemoryRecord(BaseModel):
    """One stored memory: the message, its session and when it was stored.

    In Jupyter it shows as a one-row table.
    """

    model_config = ConfigDict(frozen=True)

    message: Message
    session_id: str
    created_at: datetime

    def _repr_html_(self) -> str:
        return MemoryRecordList([self]).table(numbered=False).html()

    def _repr_markdown_(self) -> str:
        return MemoryRecordList([self]).table(numbered=False).markdown()


class MemoryHit(MemoryRecord):
    """One search result: a stored memory and its relevance.

    ``explanation`` breaks ``score`` into its parts when the search was asked to
    explain (``search_memory_hits(..., explain=True)``), else it is None. A backend
    that ranks with :mod:`agentmem.search.ranking` passes the ranking's score, an
    :class:`~agentmem.search.ranking.ExplainedScore`, as ``score``, and the hit takes
    the explanation from it.
    """

    score: float
    explanation: ScoreExplanation | None = None

    @model_validator(mode="before")
    @classmethod
    def _explanation_of_score(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and isinstance(data.get("score"), ExplainedScore)
            and data.get("explanation") is None
        ):
            return {**data, "explanation": data["score"].explanation}
        return data

    def _repr_html_(self) -> str:
        return MemoryHitList([self]).table(ranked=False).html()

    def _repr_markdown_(self) -> str:
        return MemoryHitList([self]).table(ranked=False).markdown()


def _record_cells(record: MemoryRecord) -> list[str]:
    return [record.session_id, format_time(record.created_at), record.message.display_text()]


class MemoryRecordList(DisplayList[MemoryRecord]):
    """Memories returned by :meth:`MemoryService.list_memory_records`: a list, shown as
    a table in Jupyter."""

    def table(self, *, numbered: bool = True) -> Table:
        """Session, creation time and text of each memory, after its position if
        ``numbered``."""
        table = Table(
            [Column("session", "code"), Column("time (UTC)"), Column("text")],
            [_record_cells(record) for record in self],
            empty="No memories.",
        )
        return table.numbered() if numbered else table


class MemoryHitList(DisplayList[MemoryHit]):
    """Hits returned by :meth:`MemoryService.search_memory_hits`, best first: a list,
    shown as a table in Jupyter (with a column of score parts when explained)."""

    def table(self, *, ranked: bool = True) -> Table:
        """Score, session, creation time and text of each hit, after its rank if
        ``ranked``, and the parts of its score when the search explained them."""
        columns = [
            Column("score", "number"),
            Column("session", "code"),
            Column("time (UTC)"),
            Column("text"),
        ]
        rows = [[f"{hit.score:.3f}", *_record_cells(hit)] for hit in self]
        if any(hit.explanation is not None for hit in self):
            columns.append(Column("score parts"))
            for row, hit in zip(rows, self, strict=True):
                row.append(hit.explanation.summary() if hit.explanation else "")
        table = Table(columns, rows, empty="No hits.")
        return table.numbered("rank") if ranked else table


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

        With :attr:`Capability.IDEMPOTENT_WRITES`, a message whose id the session already
        holds (or that repeats an id of the same call) is not stored again, so a call
        that raised may be retried with the same messages.

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
        *,
        explain: bool = False,
    ) -> MemoryHitList:
        """Memories relevant to the text of the last message, best first, with scores.

        ``filters``: ``top_k`` (default 100), ``session_id``, ``start_time``/``end_time``
        (datetime or Unix seconds, inclusive), ``metadata`` (key/values a memory's
        metadata must hold) and ``min_score``. With the default lexical search a memory
        is returned only if it shares a term with the query; a backend given an
        embedder also returns memories close in meaning. Equal scores put the newer
        memory first.

        ``explain=True`` gives each hit an ``explanation``: its score broken into what
        each query term brought from the memory's text and from its context, the part
        of meaning and the expansion terms (see :mod:`agentmem.search.ranking`); only
        backends with :attr:`Capability.RANKED_SEARCH` can.
        """
        check_id(user_id, "user_id")
        parsed_filters = parse_search_filters(filters)
        if not isinstance(explain, bool):
            raise InvalidArgumentError("explain", f"must be a bool, got {type(explain).__name__}")
        if explain:
            self._require(Capability.RANKED_SEARCH, "explain a ranking")
            parsed_filters = dataclasses.replace(parsed_filters, explain=True)
        query = query_text(messages)
        if not query:
            return MemoryHitList()
        with self._mapped("search memories"):
            return MemoryHitList(await self._search_memories(user_id, query, parsed_filters))

    async def search_memory(
        self,
        user_id: str,
        messages: QueryArg,
        filters: Mapping[str, Any] | None = None,
    ) -> MessageList:
        """The messages of :meth:`search_memory_hits`, best first."""
        return _messages(await self.search_memory_hits(user_id, messages, filters))

    async def list_memory_records(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> MemoryRecordList:
        """One page of a user's memories with their sessions and times, oldest first.

        ``filters`` as for :meth:`list_memory`.
        """
        check_id(user_id, "user_id")
        page = parse_list_filters(filters)
        if page.session_id is not None:
            self._require(Capability.LIST_BY_SESSION, "list one session's memories")
        with self._mapped("list memories"):
            return MemoryRecordList(await self._list_memories(user_id, page))

    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> MessageList:
        """One page of a user's memories, oldest first.

        ``filters``: ``page_num`` (from 1, default 1), ``page_size`` (default 10, at most
        :data:`~agentmem.limits.MAX_PAGE_SIZE`) and ``session_id``.
        """
        return _messages(await self.list_memory_records(user_id, filters))

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


def _messages(records: Iterable[MemoryRecord]) -> MessageList:
    return MessageList(record.message for record in records)


def __getattr__(name: str) -> Any:
    # AgentScope Runtime 1.0 defined the in-memory backend in this module.
    if name == "InMemoryMemoryService":
        from agentmem.services.memory.in_memory_memory_service import InMemoryMemoryService

        return InMemoryMemoryService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
