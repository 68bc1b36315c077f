"""AgentScope 1.0 long-term memory backed by any agentmem :class:`MemoryService`.

Needs ``agentmem-services[agentscope]`` (AgentScope 1.0.x, whose ``LongTermMemoryBase``
this subclasses). The module imports without AgentScope; constructing the adapter then
raises :class:`agentmem.errors.MissingExtraError`.

AgentScope messages (``Msg``) are stored as agentmem :class:`Message` objects and
come back unchanged: text blocks become :class:`TextContent`, images and audio
:class:`ImageContent`/:class:`AudioContent`, and thinking, tool-use, tool-result and
video blocks :class:`DataContent` holding the block as it was. The sender's name, the
timestamp and the invocation id go to ``metadata["agentscope_msg"]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from agentmem._validation import check_id, check_optional_id
from agentmem.errors import InvalidArgumentError, MissingExtraError
from agentmem.schemas.agent_schemas import (
    AudioContent,
    Content,
    DataContent,
    FileContent,
    ImageContent,
    Message,
    RefusalContent,
    TextContent,
)
from agentmem.services.memory.memory_service import MemoryService

if TYPE_CHECKING:
    from agentscope.memory import LongTermMemoryBase
    from agentscope.message import Msg
    from agentscope.tool import ToolResponse
else:
    try:
        from agentscope.memory import LongTermMemoryBase
    except ImportError as _exc:
        _IMPORT_ERROR = _exc

        class LongTermMemoryBase:
            """Stands in for AgentScope's base class when AgentScope is missing."""

            def __init__(self) -> None:
                raise MissingExtraError(
                    "AgentScopeLongTermMemory", "agentscope", _IMPORT_ERROR.name
                ) from _IMPORT_ERROR


__all__ = ["AgentScopeLongTermMemory", "message_to_msg", "msg_to_message"]

#: The metadata key holding what a ``Msg`` has and a :class:`Message` has not.
MSG_METADATA_KEY = "agentscope_msg"

# Blocks kept whole in a DataContent; their "type" says which block they were.
_DATA_BLOCKS = frozenset({"thinking", "tool_use", "tool_result", "video"})


def _block_to_content(block: Any) -> Content:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return TextContent(text=block.get("text", ""))
    if kind in {"image", "audio"}:
        source = block.get("source") or {}
        if source.get("type") == "url":
            if kind == "image":
                return ImageContent(image_url=source["url"])
            return AudioContent(data=source["url"])
        if source.get("type") == "base64":
            if kind == "image":
                return ImageContent(
                    image_url=f"data:{source['media_type']};base64,{source['data']}"
                )
            return AudioContent(data=source["data"], format=source["media_type"])
    if kind in _DATA_BLOCKS:
        return DataContent(data=json.loads(json.dumps(block)))
    raise InvalidArgumentError("msg.content", f"unsupported AgentScope content block: {block!r}")


def msg_to_message(msg: Msg) -> Message:
    """The agentmem :class:`Message` holding everything of an AgentScope ``Msg``."""
    metadata = dict(msg.metadata or {})
    if MSG_METADATA_KEY in metadata:
        raise InvalidArgumentError(
            "msg.metadata", f"must not use the reserved key {MSG_METADATA_KEY!r}"
        )
    extra: dict[str, Any] = {
        "name": msg.name,
        "timestamp": msg.timestamp,
        "invocation_id": msg.invocation_id,
    }
    if isinstance(msg.content, str):
        contents: list[Content] = [TextContent(text=msg.content)]
        extra["text_content"] = True
    else:
        contents = [_block_to_content(block) for block in msg.content]
    metadata[MSG_METADATA_KEY] = extra
    return Message.model_validate(
        {
            "id": msg.id,
            "role": msg.role,
            "content": [content.model_dump() for content in contents],
            "metadata": metadata,
        }
    )


def _content_to_block(content: Any) -> dict[str, Any]:
    if isinstance(content, TextContent):
        return {"type": "text", "text": content.text or ""}
    if isinstance(content, ImageContent):
        url = content.image_url or ""
        if url.startswith("data:") and ";base64," in url:
            media_type, _, data = url[len("data:") :].partition(";base64,")
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
        return {"type": "image", "source": {"type": "url", "url": url}}
    if isinstance(content, AudioContent):
        if content.format is not None:
            source = {"type": "base64", "media_type": content.format, "data": content.data or ""}
            return {"type": "audio", "source": source}
        return {"type": "audio", "source": {"type": "url", "url": content.data or ""}}
    if isinstance(content, DataContent):
        payload = content.data or {}
        if payload.get("type") in _DATA_BLOCKS:
            return dict(payload)
        return {"type": "text", "text": json.dumps(payload, ensure_ascii=False)}
    if isinstance(content, RefusalContent):
        return {"type": "text", "text": content.refusal or ""}
    if isinstance(content, FileContent):
        name = content.filename or content.file_url or content.file_id or "file"
        return {"type": "text", "text": f"[file: {name}]"}
    return {"type": "text", "text": json.dumps(content.model_dump(), ensure_ascii=False)}


def message_to_msg(message: Message) -> Msg:
    """The AgentScope ``Msg`` of a :class:`Message`; the inverse of :func:`msg_to_message`.

    Messages that did not come from AgentScope convert too: roles other than user,
    assistant and system become ``assistant``, refusals and other parts become text.
    """
    from agentscope.message import Msg

    metadata = dict(message.metadata or {})
    extra = metadata.pop(MSG_METADATA_KEY, None)
    extra = extra if isinstance(extra, dict) else {}
    role: Literal["user", "assistant", "system"] = "assistant"
    if message.role == "user":
        role = "user"
    elif message.role == "system":
        role = "system"
    blocks = [_content_to_block(content) for content in message.content or ()]
    content: str | list[Any] = blocks
    if extra.get("text_content") and len(blocks) == 1 and blocks[0]["type"] == "text":
        content = blocks[0]["text"]
    msg = Msg(
        name=str(extra.get("name") or role),
        content=content,
        role=role,
        metadata=metadata,
        timestamp=extra.get("timestamp"),
        invocation_id=extra.get("invocation_id"),
    )
    msg.id = message.id
    return msg


class AgentScopeLongTermMemory(LongTermMemoryBase):
    """AgentScope's ``LongTermMemoryBase`` over an agentmem memory service.

    ``record`` and ``retrieve`` are for developers (e.g. around each reply);
    ``record_to_memory`` and ``retrieve_from_memory`` are tool functions an agent calls
    (register them with ``Toolkit.register_tool_function``). Memories are recorded in
    ``session_id`` and retrieved from all of the user's sessions, since long-term memory
    spans conversations.

    The adapter borrows ``service``: start it before use (the in-memory service works
    unstarted) and stop it when done. Bad arguments raise
    :class:`agentmem.errors.InvalidArgumentError` (a ``ValueError`` and a ``TypeError``),
    as the services do. Errors of the service propagate; AgentScope's toolkit turns
    those raised in tool functions into an error response for the agent.
    """

    def __init__(
        self, service: MemoryService, session_id: str | None = None, *, user_id: str
    ) -> None:
        super().__init__()
        if not isinstance(service, MemoryService):
            raise InvalidArgumentError(
                "service", f"must be a MemoryService, got {type(service).__name__}"
            )
        self.service = service
        self.user_id = check_id(user_id, "user_id")
        self.session_id = check_optional_id(session_id, "session_id")

    async def record(self, msgs: Msg | Sequence[Msg | None] | None, **kwargs: Any) -> None:
        """Store the given messages (``None`` entries are skipped) in the session."""
        from agentscope.message import Msg

        if msgs is None:
            return
        items = [msgs] if isinstance(msgs, Msg) else [msg for msg in msgs if msg is not None]
        for item in items:
            if not isinstance(item, Msg):
                raise InvalidArgumentError(
                    "msgs", f"must hold AgentScope Msg objects, got {type(item).__name__}"
                )
        messages = [msg_to_message(msg) for msg in items]
        if messages:
            await self.service.add_memory(self.user_id, messages, self.session_id)

    async def retrieve(self, msg: Msg | Sequence[Msg] | None, limit: int = 5, **kwargs: Any) -> str:
        """The texts of the memories most relevant to the messages' text, one per line.

        The query is the text of all given messages together; an empty string when
        nothing matches.
        """
        from agentscope.message import Msg

        if msg is None:
            return ""
        items = [msg] if isinstance(msg, Msg) else list(msg)
        query = "\n".join(item.get_text_content() or "" for item in items).strip()
        if not query:
            return ""
        found = await self.service.search_memory(self.user_id, query, {"top_k": limit})
        return "\n".join(_text_of(message) for message in found)

    async def record_to_memory(
        self, thinking: str, content: list[str], **kwargs: Any
    ) -> ToolResponse:
        """Use this function to record important information that you may need later.

        The target content should be specific and concise, e.g. who, when, where, do
        what, why, how, etc. Each string of ``content`` is remembered separately.

        Args:
            thinking (`str`):
                Your thinking and reasoning about what to record.
            content (`list[str]`):
                The content to remember, which is a list of strings.
        """
        from agentscope.message import TextBlock
        from agentscope.tool import ToolResponse

        items = [item for item in content if isinstance(item, str) and item.strip()]
        if len(items) != len(content):
            raise InvalidArgumentError("content", "must be a list of non-empty strings")
        messages = []
        for item in items:
            parts: list[dict[str, Any]] = [{"type": "text", "text": item}]
            if thinking:
                parts.append({"type": "data", "data": {"type": "thinking", "thinking": thinking}})
            messages.append(
                Message.model_validate(
                    {
                        "role": "assistant",
                        "content": parts,
                        "metadata": {MSG_METADATA_KEY: {"name": "record_to_memory"}},
                    }
                )
            )
        if messages:
            await self.service.add_memory(self.user_id, messages, self.session_id)
        text = f"Recorded {len(messages)} item(s) in long-term memory."
        return ToolResponse(content=[TextBlock(type="text", text=text)])

    async def retrieve_from_memory(
        self, keywords: list[str], limit: int = 5, **kwargs: Any
    ) -> ToolResponse:
        """Retrieve the memory based on the given keywords.

        Args:
            keywords (`list[str]`):
                The keywords to search for in the memory, which should be specific and
                concise, e.g. the person's name, the date, the location, etc. Each
                keyword is searched separately.
            limit (`int`, optional):
                The maximum number of memories to retrieve per keyword. Defaults to 5.
        """
        from agentscope.message import TextBlock
        from agentscope.tool import ToolResponse

        seen: set[str] = set()
        lines: list[str] = []
        for keyword in keywords:
            for message in await self.service.search_memory(
                self.user_id, keyword, {"top_k": limit}
            ):
                if message.id not in seen:
                    seen.add(message.id)
                    lines.append(_text_of(message))
        text = "\n".join(lines) if lines else f"No memories found for {keywords!r}."
        return ToolResponse(content=[TextBlock(type="text", text=text)])


def _text_of(message: Message) -> str:
    return message.searchable_text() or message.get_text_content() or ""
