"""Small builders shared by the tests."""

from __future__ import annotations

from agentmem import Message, TextContent


def text_message(text: str, role: str = "user", **fields: object) -> Message:
    return Message(role=role, content=[TextContent(text=text)], **fields)


def texts(messages: list[Message]) -> list[str]:
    return [message.get_text_content() or "" for message in messages]
