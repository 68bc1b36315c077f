"""Messages and sessions: the JSON shape shared with AgentScope Runtime 1.0."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agentmem import (
    AudioContent,
    DataContent,
    FileContent,
    ImageContent,
    Message,
    RefusalContent,
    Role,
    Session,
    TextContent,
)
from agentmem.schemas.agent_schemas import to_message, to_messages

# The keys of a message's JSON in AgentScope Runtime 1.0, in their order.
MESSAGE_KEYS = [
    "sequence_number",
    "object",
    "status",
    "error",
    "id",
    "type",
    "role",
    "content",
    "code",
    "message",
    "usage",
    "metadata",
]


def test_message_json_has_the_runtime_keys_in_order() -> None:
    message = Message(role=Role.USER, content=[TextContent(text="hi")])
    assert list(message.model_dump()) == MESSAGE_KEYS
    assert list(json.loads(message.model_dump_json())) == MESSAGE_KEYS


def test_message_defaults() -> None:
    message = Message()
    dumped = message.model_dump()
    assert dumped["object"] == "message"
    assert dumped["type"] == "message"
    assert dumped["status"] == "created"
    assert dumped["role"] is None and dumped["content"] is None
    assert message.id.startswith("msg_")
    assert Message().id != message.id


def test_text_content_json() -> None:
    part = TextContent(text="hello")
    assert part.model_dump() == {
        "sequence_number": None,
        "object": "content",
        "status": None,
        "error": None,
        "type": "text",
        "index": None,
        "delta": False,
        "msg_id": None,
        "text": "hello",
    }


@pytest.mark.parametrize(
    ("part", "cls"),
    [
        ({"type": "text", "text": "t"}, TextContent),
        ({"type": "image", "image_url": "https://example.org/a.png"}, ImageContent),
        ({"type": "data", "data": {"k": [1, 2]}}, DataContent),
        ({"type": "audio", "data": "AAAA", "format": "wav"}, AudioContent),
        ({"type": "file", "file_url": "https://example.org/f", "filename": "f.txt"}, FileContent),
        ({"type": "refusal", "refusal": "no"}, RefusalContent),
    ],
)
def test_content_parts_are_discriminated_by_type(part: dict[str, object], cls: type) -> None:
    message = Message.model_validate({"role": "user", "content": [part]})
    assert message.content is not None
    assert type(message.content[0]) is cls


def test_unknown_content_type_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "user", "content": [{"type": "video", "url": "x"}]})


def test_dict_round_trip_is_lossless() -> None:
    message = Message(
        role=Role.ASSISTANT,
        content=[
            TextContent(text="see file"),
            FileContent(filename="report.pdf", file_id="f1"),
            DataContent(data={"rows": 3}),
        ],
        metadata={"source": "test"},
        usage={"input_tokens": 3},
    )
    assert Message.model_validate(message.model_dump()) == message
    assert Message.model_validate_json(message.model_dump_json()) == message


def test_unknown_fields_are_kept() -> None:
    # Messages written by newer runtimes keep their extra fields through a round trip.
    message = Message.model_validate({"role": "user", "content": [], "trace_id": "t-1"})
    assert message.model_dump()["trace_id"] == "t-1"


def test_text_accessors() -> None:
    message = Message(
        role="user",
        content=[
            TextContent(text="first"),
            ImageContent(image_url="https://example.org/i.png"),
            TextContent(text="second"),
            RefusalContent(refusal="refused"),
            FileContent(filename="notes.txt"),
        ],
    )
    assert message.get_text_content() == "first\nsecond"
    assert message.searchable_text() == "first\nsecond\nrefused\nnotes.txt"
    assert Message(role="user").get_text_content() is None


def test_session_validates_dict_messages() -> None:
    session = Session(
        id="s<1>",
        user_id="u",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    )
    assert isinstance(session.messages[0], Message)
    assert Session.model_validate(session.model_dump()) == session


def test_plain_string_content_is_one_text_part() -> None:
    message = to_message({"role": "user", "content": "I moved to Lisbon"})
    assert message.content == [TextContent(text="I moved to Lisbon")]
    assert message.model_dump()["content"][0]["type"] == "text"


def test_to_message_accepts_messages_and_dicts_only() -> None:
    message = Message(role="user")
    assert to_message(message) is message
    assert to_message({"role": "user"}).role == "user"
    with pytest.raises(TypeError, match="expected a Message or a dict"):
        to_message("hello")


def test_to_messages_validates_all_or_nothing() -> None:
    assert len(to_messages({"role": "user"})) == 1
    assert len(to_messages([Message(role="user"), {"role": "assistant"}])) == 2
    with pytest.raises(TypeError, match="message 1"):
        to_messages([{"role": "user"}, 3])
    with pytest.raises(TypeError):
        to_messages("not messages")
    with pytest.raises(ValidationError):
        to_messages([{"role": "user", "content": 5}])
