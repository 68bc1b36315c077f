"""Pydantic models shared by every service."""

from agentmem.schemas.agent_schemas import (
    AudioContent,
    ContentType,
    DataContent,
    FileContent,
    ImageContent,
    Message,
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
    "MessageType",
    "RefusalContent",
    "Role",
    "RunStatus",
    "Session",
    "TextContent",
]
