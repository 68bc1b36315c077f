"""Small builders shared by the tests."""

from __future__ import annotations

from agentmem import MemoryService, Message, TextContent


def text_message(text: str, role: str = "user", **fields: object) -> Message:
    return Message(role=role, content=[TextContent(text=text)], **fields)


def texts(messages: list[Message]) -> list[str]:
    return [message.get_text_content() or "" for message in messages]


def require(service: MemoryService, capability: str) -> None:
    """Skip the calling test when the backend lacks an optional capability."""
    import pytest

    if capability not in service.capabilities:
        pytest.skip(f"{type(service).__name__} does not offer {capability!r}")
