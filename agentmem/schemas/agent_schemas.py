"""Messages and their content parts.

The JSON of these models has the same shape as AgentScope Runtime 1.0's
``agent_schemas``, so stored messages move between the two unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from agentmem.schemas.display import Column, DisplayList, Table

__all__ = [
    "AgentContent",
    "AudioContent",
    "Content",
    "ContentType",
    "DataContent",
    "Error",
    "Event",
    "FileContent",
    "ImageContent",
    "Message",
    "MessageLike",
    "MessageList",
    "MessageType",
    "RefusalContent",
    "Role",
    "RunStatus",
    "TextContent",
    "to_message",
    "to_messages",
]


class MessageType:
    """Values of :attr:`Message.type`."""

    MESSAGE = "message"
    FUNCTION_CALL = "function_call"
    FUNCTION_CALL_OUTPUT = "function_call_output"
    PLUGIN_CALL = "plugin_call"
    PLUGIN_CALL_OUTPUT = "plugin_call_output"
    COMPONENT_CALL = "component_call"
    COMPONENT_CALL_OUTPUT = "component_call_output"
    MCP_LIST_TOOLS = "mcp_list_tools"
    MCP_APPROVAL_REQUEST = "mcp_approval_request"
    MCP_TOOL_CALL = "mcp_call"
    MCP_APPROVAL_RESPONSE = "mcp_approval_response"
    REASONING = "reasoning"
    HEARTBEAT = "heartbeat"
    ERROR = "error"


class ContentType:
    """Values of a content part's ``type``."""

    TEXT = "text"
    DATA = "data"
    IMAGE = "image"
    AUDIO = "audio"
    FILE = "file"
    REFUSAL = "refusal"


class Role:
    """Values of :attr:`Message.role`."""

    ASSISTANT = "assistant"
    USER = "user"
    SYSTEM = "system"
    TOOL = "tool"


class RunStatus:
    """Values of the ``status`` of messages and content parts."""

    Created = "created"
    InProgress = "in_progress"
    Completed = "completed"
    Canceled = "canceled"
    Failed = "failed"
    Rejected = "rejected"
    Unknown = "unknown"
    Queued = "queued"
    Incomplete = "incomplete"


class Error(BaseModel):
    """An error attached to an event."""

    code: str
    message: str


class Event(BaseModel):
    """Fields shared by messages and content parts."""

    model_config = ConfigDict(extra="allow")

    sequence_number: int | None = None
    object: str
    status: str | None = None
    error: Error | None = None


class Content(Event):
    """Base of the content parts of a message."""

    type: str
    object: str = "content"
    index: int | None = None
    delta: bool | None = False
    msg_id: str | None = None


class TextContent(Content):
    """Plain text."""

    type: Literal["text"] = "text"
    text: str | None = None


class ImageContent(Content):
    """An image, by URL or data URL."""

    type: Literal["image"] = "image"
    image_url: str | None = None


class DataContent(Content):
    """Structured data (a JSON object)."""

    type: Literal["data"] = "data"
    data: dict[str, Any] | None = None


class AudioContent(Content):
    """Audio, as base64 data or a URL, with its format."""

    type: Literal["audio"] = "audio"
    data: str | None = None
    format: str | None = None


class FileContent(Content):
    """A file, by URL, id or inline data."""

    type: Literal["file"] = "file"
    file_url: str | None = None
    file_id: str | None = None
    filename: str | None = None
    file_data: str | None = None


class RefusalContent(Content):
    """A model's refusal to answer."""

    type: Literal["refusal"] = "refusal"
    refusal: str | None = None


AgentContent: TypeAlias = Annotated[
    TextContent | ImageContent | DataContent | AudioContent | FileContent | RefusalContent,
    Field(discriminator="type"),
]


def _new_message_id() -> str:
    return f"msg_{uuid.uuid4()}"


class Message(Event):
    """One message of a conversation.

    ``content`` is a list of parts discriminated by their ``type``; plain dicts are
    validated into the matching part class. A plain string, as in OpenAI's and mem0's
    messages (``{"role": "user", "content": "I moved to Lisbon"}``), becomes one text
    part.
    """

    id: str = Field(default_factory=_new_message_id)
    object: str = "message"
    type: str = MessageType.MESSAGE
    status: str = RunStatus.Created
    role: str | None = None
    content: list[AgentContent] | None = None
    code: str | None = None
    message: str | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_as_part(cls, value: Any) -> Any:
        return [{"type": ContentType.TEXT, "text": value}] if isinstance(value, str) else value

    def get_text_content(self) -> str | None:
        """The text of the message's text parts joined by newlines, or None if it has none."""
        texts = [part.text for part in self.content or () if isinstance(part, TextContent)]
        present = [text for text in texts if text]
        return "\n".join(present) if present else None

    def searchable_text(self) -> str:
        """All human-readable text of the message: text, refusals and file names."""
        pieces: list[str] = []
        for part in self.content or ():
            if isinstance(part, TextContent) and part.text:
                pieces.append(part.text)
            elif isinstance(part, RefusalContent) and part.refusal:
                pieces.append(part.refusal)
            elif isinstance(part, FileContent) and part.filename:
                pieces.append(part.filename)
        return "\n".join(pieces)

    def display_text(self) -> str:
        """The message as a line of a table: its text, other parts as ``[image]``..."""
        pieces: list[str] = []
        for part in self.content or ():
            if isinstance(part, TextContent):
                pieces.append(part.text or "")
            elif isinstance(part, RefusalContent):
                pieces.append(f"[refusal] {part.refusal or ''}")
            elif isinstance(part, FileContent) and part.filename:
                pieces.append(f"[file {part.filename}]")
            else:
                pieces.append(f"[{part.type}]")
        return "\n".join(pieces)

    def _repr_html_(self) -> str:
        return MessageList([self]).table(numbered=False).html()

    def _repr_markdown_(self) -> str:
        return MessageList([self]).table(numbered=False).markdown()


class MessageList(DisplayList[Message]):
    """Messages returned by a service: a list, shown as a table in Jupyter."""

    def table(self, *, numbered: bool = True) -> Table:
        """Role, text and id of each message, after its position if ``numbered``."""
        table = Table(
            [Column("role"), Column("text"), Column("id", "code")],
            [[message.role or "", message.display_text(), message.id] for message in self],
            empty="No messages.",
        )
        return table.numbered() if numbered else table


MessageLike: TypeAlias = Message | Mapping[str, Any]

_message_adapter: TypeAdapter[Message] = TypeAdapter(Message)


def to_message(value: object) -> Message:
    """Validate one message given as a :class:`Message` or a plain dict.

    Raises ``TypeError`` for anything else and pydantic's ``ValidationError`` (a
    ``ValueError``) for a dict that is not a valid message.
    """
    if isinstance(value, Message):
        return value
    if isinstance(value, Mapping):
        return _message_adapter.validate_python(dict(value))
    raise TypeError(
        f"expected a Message or a dict such as "
        f'{{"role": "user", "content": [{{"type": "text", "text": "..."}}]}}, '
        f"got {type(value).__name__}"
    )


def to_messages(values: object) -> list[Message]:
    """Validate a message or a list of messages (objects or dicts), all or nothing."""
    if isinstance(values, Message | Mapping):
        return [to_message(values)]
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"expected a Message, a dict or a list of them, got {type(values).__name__}"
        )
    result: list[Message] = []
    for position, value in enumerate(values):
        try:
            result.append(to_message(value))
        except TypeError as exc:
            raise TypeError(f"message {position}: {exc}") from None
    return result
