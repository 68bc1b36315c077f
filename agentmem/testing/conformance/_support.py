"""Builders and the capability guard shared by the conformance suites."""

from __future__ import annotations

import pytest

from agentmem.schemas.agent_schemas import Message, TextContent
from agentmem.services.base import Capability, ServiceWithLifecycleManager


def text_message(text: str, role: str = "user", **fields: object) -> Message:
    return Message(role=role, content=[TextContent(text=text)], **fields)


def texts(messages: list[Message]) -> list[str]:
    return [message.get_text_content() or "" for message in messages]


def require(service: ServiceWithLifecycleManager, capability: Capability) -> None:
    """Skip the calling test when the backend does not offer ``capability``."""
    if capability not in service.capabilities:
        pytest.skip(f"{type(service).__name__} does not offer {capability.value!r}")


def lacking(service: ServiceWithLifecycleManager, capability: Capability) -> None:
    """Skip the calling test when the backend offers ``capability`` (it tests the refusal)."""
    if capability in service.capabilities:
        pytest.skip(f"{type(service).__name__} offers {capability.value!r}: nothing to refuse")
