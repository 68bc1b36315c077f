"""A conversation session and its messages."""

from __future__ import annotations

import html

from pydantic import BaseModel, Field

from agentmem.schemas.agent_schemas import Message

__all__ = ["Session"]


class Session(BaseModel):
    """A conversation of one user: its id, the user's id and the messages in order.

    Messages given as dicts are validated into :class:`Message` objects.
    """

    id: str
    user_id: str
    messages: list[Message] = Field(default_factory=list)

    def _repr_markdown_(self) -> str:
        lines = [
            f"**Session** `{html.escape(self.id)}` of user `{html.escape(self.user_id)}`"
            f" — {len(self.messages)} message(s)",
            "",
        ]
        lines.extend(f"- {message._repr_markdown_()}" for message in self.messages)
        return "\n".join(lines)
