"""The abstract memory service: long-term memories of users, grouped by session."""

from __future__ import annotations

import html
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.services.base import ServiceWithLifecycleManager

__all__ = ["MemoryHit", "MemoryService", "query_text"]


class MemoryHit(BaseModel):
    """One search result: the stored message, its relevance and where it came from."""

    model_config = ConfigDict(frozen=True)

    message: Message
    score: float
    session_id: str
    created_at: datetime

    def _repr_markdown_(self) -> str:
        return (
            f"`{self.score:.3f}` · session `{html.escape(self.session_id)}` · "
            f"{self.message._repr_markdown_()}"
        )


def query_text(messages: object) -> str:
    """The text searched for: that of the last message (a plain string is taken as is)."""
    if isinstance(messages, str):
        return messages
    parsed = to_messages(messages)
    return parsed[-1].searchable_text() if parsed else ""


class MemoryService(ServiceWithLifecycleManager):
    """Long-term memory: messages stored per user, grouped by session, searchable.

    Every method takes the user id first; one user never sees another's memories.
    Messages may be given as :class:`Message` objects or plain dicts. Memories added
    without a ``session_id`` go to the session ``"default"``.

    Subclasses implement :meth:`add_memory`, :meth:`search_memory_hits`,
    :meth:`list_memory` and :meth:`delete_memory`; :meth:`search_memory` is built on
    :meth:`search_memory_hits`.
    """

    #: Optional behaviours this backend offers; the conformance suite skips a test
    #: that needs one the backend lacks. ``"ranked_search"``: results best first by the
    #: shared ranking; ``"list_by_session"``: ``list_memory`` filters by ``session_id``;
    #: ``"delete_by_session"``: ``delete_memory`` with a ``session_id``.
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ranked_search", "list_by_session", "delete_by_session"}
    )

    @abstractmethod
    async def add_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        """Store messages for a user, in order, all or none."""

    @abstractmethod
    async def search_memory_hits(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any] | str,
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

    async def search_memory(
        self,
        user_id: str,
        messages: Sequence[Message | Mapping[str, Any]] | Message | Mapping[str, Any] | str,
        filters: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """The messages of :meth:`search_memory_hits`, best first."""
        return [hit.message for hit in await self.search_memory_hits(user_id, messages, filters)]

    @abstractmethod
    async def list_memory(
        self, user_id: str, filters: Mapping[str, Any] | None = None
    ) -> list[Message]:
        """One page of a user's memories, oldest first.

        ``filters``: ``page_num`` (from 1, default 1), ``page_size`` (default 10) and
        ``session_id``. Invalid values raise ``ValueError``.
        """

    @abstractmethod
    async def delete_memory(self, user_id: str, session_id: str | None = None) -> None:
        """Delete one session's memories, or all of the user's when ``session_id`` is None.

        Deleting what does not exist is not an error.
        """
