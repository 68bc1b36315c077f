"""The AgentScope adapter against the real ``agentscope`` 1.0 package, on every backend."""

from __future__ import annotations

import pytest

from agentmem import InMemoryMemoryService, InvalidArgumentError, MemoryService, Message

agentscope = pytest.importorskip("agentscope")

from agentscope.message import Msg, ToolUseBlock  # noqa: E402
from agentscope.tool import Toolkit, ToolResponse  # noqa: E402

from agentmem.adapters.agentscope.long_term_memory import (  # noqa: E402
    AgentScopeLongTermMemory,
    message_to_msg,
    msg_to_message,
)


def rich_msg() -> Msg:
    msg = Msg(
        name="Friday",
        role="assistant",
        content=[
            {"type": "thinking", "thinking": "The user asked about the weather."},
            {"type": "text", "text": "Let me check the forecast."},
            {
                "type": "tool_use",
                "id": "call-1",
                "name": "get_weather",
                "input": {"city": "Paris", "days": 2},
            },
            {
                "type": "tool_result",
                "id": "call-1",
                "name": "get_weather",
                "output": [{"type": "text", "text": "sunny"}],
            },
            {"type": "image", "source": {"type": "url", "url": "https://example.org/a.png"}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            },
            {
                "type": "audio",
                "source": {"type": "base64", "media_type": "audio/wav", "data": "UklGRg=="},
            },
            {"type": "video", "source": {"type": "url", "url": "https://example.org/v.mp4"}},
        ],
        metadata={"structured": {"temperature": 21, "unit": "C"}},
        invocation_id="inv-7",
    )
    return msg


def test_msg_round_trip_keeps_every_block() -> None:
    original = rich_msg()
    stored = Message.model_validate_json(msg_to_message(original).model_dump_json())
    back = message_to_msg(stored)
    assert back.to_dict() == original.to_dict()
    assert back.invocation_id == "inv-7"
    assert back.get_content_blocks("tool_use") == original.get_content_blocks("tool_use")


def test_text_msg_round_trip_keeps_plain_string() -> None:
    original = Msg(name="user", role="user", content="I like green tea")
    message = msg_to_message(original)
    assert message.get_text_content() == "I like green tea"
    assert message.role == "user"
    assert message_to_msg(message).to_dict() == original.to_dict()


def test_converted_message_is_searchable_by_its_text_only() -> None:
    message = msg_to_message(rich_msg())
    assert message.searchable_text() == "Let me check the forecast."


def test_reserved_metadata_key_is_refused() -> None:
    with pytest.raises(ValueError, match="agentscope_msg"):
        msg_to_message(Msg(name="u", role="user", content="x", metadata={"agentscope_msg": 1}))


def test_foreign_messages_convert() -> None:
    message = Message.model_validate(
        {
            "role": "tool",
            "content": [
                {"type": "refusal", "refusal": "no"},
                {"type": "file", "filename": "report.pdf"},
                {"type": "data", "data": {"k": 1}},
            ],
        }
    )
    msg = message_to_msg(message)
    assert msg.role == "assistant"
    assert msg.get_text_content() == 'no\n[file: report.pdf]\n{"k": 1}'


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="service"):
        AgentScopeLongTermMemory(service=object(), user_id="u")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="user_id"):
        AgentScopeLongTermMemory(service=InMemoryMemoryService(), user_id=" ")


async def test_bad_records_store_nothing() -> None:
    memory = AgentScopeLongTermMemory(service=InMemoryMemoryService(), user_id="u")
    good = Msg(name="user", role="user", content="I like green tea")
    with pytest.raises(InvalidArgumentError, match="msgs"):
        await memory.record([good, "not a Msg"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="content"):
        await memory.record_to_memory("", ["tea", " "])
    assert await memory.service.list_memory("u") == []


async def test_spec_example_records_and_retrieves() -> None:
    memory = AgentScopeLongTermMemory(
        service=InMemoryMemoryService(), session_id="Test Session", user_id="User1"
    )
    await memory.record([Msg(name="user", role="user", content="My cat is called Tom"), None])
    assert await memory.retrieve(Msg(name="user", role="user", content="cat name?")) == (
        "My cat is called Tom"
    )


async def test_record_and_retrieve_on_each_backend(memory_service: MemoryService) -> None:
    memory = AgentScopeLongTermMemory(service=memory_service, session_id="s1", user_id="alice")
    other = AgentScopeLongTermMemory(service=memory_service, session_id="s1", user_id="bob")
    await memory.record(
        [
            Msg(name="alice", role="user", content="I adopted a cat named Tom"),
            Msg(name="Friday", role="assistant", content="Tom is a lovely name for a cat"),
            Msg(name="alice", role="user", content="I work as a nurse in Lyon"),
        ]
    )
    await other.record([Msg(name="bob", role="user", content="bob has a cat too")])
    found = await memory.retrieve(Msg(name="alice", role="user", content="tell me about my cat"))
    assert set(found.splitlines()) == {
        "I adopted a cat named Tom",
        "Tom is a lovely name for a cat",
    }
    assert await memory.retrieve(None) == ""
    [stored] = await memory_service.list_memory("alice", {"page_size": 1})
    assert message_to_msg(stored).name == "alice"


async def test_tool_functions_through_the_toolkit(memory_service: MemoryService) -> None:
    memory = AgentScopeLongTermMemory(service=memory_service, session_id="s", user_id="agent-u")
    toolkit = Toolkit()
    toolkit.register_tool_function(memory.record_to_memory)
    toolkit.register_tool_function(memory.retrieve_from_memory)
    names = {schema["function"]["name"] for schema in toolkit.get_json_schemas()}
    assert names == {"record_to_memory", "retrieve_from_memory"}

    async def call(name: str, arguments: dict[str, object]) -> str:
        block = ToolUseBlock(type="tool_use", id=f"call-{name}", name=name, input=arguments)
        responses = [response async for response in await toolkit.call_tool_function(block)]
        last = responses[-1]
        assert isinstance(last, ToolResponse)
        return "\n".join(part["text"] for part in last.content if part["type"] == "text")

    recorded = await call(
        "record_to_memory",
        {
            "thinking": "The user shared stable facts.",
            "content": ["The user's sister lives in Oslo", "The user is allergic to peanuts"],
        },
    )
    assert recorded == "Recorded 2 item(s) in long-term memory."
    retrieved = await call("retrieve_from_memory", {"keywords": ["Oslo", "peanuts"], "limit": 3})
    assert retrieved.splitlines() == [
        "The user's sister lives in Oslo",
        "The user is allergic to peanuts",
    ]
    missing = await call("retrieve_from_memory", {"keywords": ["volcano"]})
    assert missing == "No memories found for ['volcano']."
    failed = await call("record_to_memory", {"thinking": "", "content": [""]})
    assert "content: must be a list of non-empty strings" in failed
    [first, _] = await memory_service.list_memory("agent-u")
    restored = message_to_msg(first)
    assert restored.get_content_blocks("thinking") == [
        {"type": "thinking", "thinking": "The user shared stable facts."}
    ]
