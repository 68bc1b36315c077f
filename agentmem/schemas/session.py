"""A conversation session and its messages."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, Field

from agentmem.schemas.agent_schemas import Message, MessageList
from agentmem.schemas.display import Table

__all__ = ["Session"]


class Session(BaseModel):
    """A conversation of one user: its id, the user's id and the messages in order.

    Messages given as dicts are validated into :class:`Message` objects. In Jupyter a
    session shows as a table of its messages.
    """

    id: str
    user_id: str
    messages: list[Message] = Field(default_factory=list)

    def table(self) -> Table:
        """The session's messages as a table, under a line naming the session."""
        count = len(self.messages)
        return dataclasses.replace(
            MessageList(self.messages).table(),
            caption=f"Session {self.id} of user {self.user_id}: "
            f"{count} message{'' if count == 1 else 's'}",
        )

    def _repr_html_(self) -> str:
        return self.table().html()

    def _repr_markdown_(self) -> str:
        return self.table().markdown()
