"""Pydantic models shared by every service, and the lists of them services return."""

from agentmem.schemas.agent_schemas import (
    AudioContent,
    ContentType,
    DataContent,
    FileContent,
    ImageContent,
    Message,
    MessageList,
    MessageType,
    RefusalContent,
    Role,
    RunStatus,
    TextContent,
)
from agentmem.schemas.session import Session

__all__ = [
    "AudioContent",
    "ContentType",
    "DataContent",
    "FileContent",
    "ImageContent",
    "Message",
    "MessageList",
    "MessageType",
    "RefusalContent",
    "Role",
    "RunStatus",
    "Session",
    "TextContent",
]
