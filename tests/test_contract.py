"""Hostile input, on every backend: the same typed error, and nothing stored.

Each test hands a service input that breaks the write contract of
:mod:`agentmem.limits` and checks that the call raises
:class:`~agentmem.errors.InvalidArgumentError` naming the offending field, and that a
read afterwards finds nothing the call could have stored. Where the contract allows a
value up to a limit, the value at the limit is stored and read back equal.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from agentmem import (
    Capability,
    DataContent,
    MemoryService,
    Message,
    Session,
    SessionHistoryService,
    StateService,
    TextContent,
)
from agentmem.errors import InvalidArgumentError
from agentmem.limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_LIST_OFFSET,
    MAX_MESSAGE_BYTES,
    MAX_PAGE_SIZE,
    MAX_ROUND_ID,
    MAX_STATE_BYTES,
)
from tests.helpers import text_message, texts

USER = "attacker"
SESSION = "s"

# Values that are not strict JSON, each stored under the key "bad" of a dict.
NOT_JSON = [
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="-inf"),
    pytest.param({1, 2}, id="set"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(object(), id="object"),
    pytest.param((1, 2), id="tuple"),
    pytest.param("\ud800", id="lone-surrogate"),
]

# Keys that JSON encoders would silently turn into strings, or that are not valid Unicode.
BAD_KEYS = [
    pytest.param(1, id="int"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param((1, 2), id="tuple"),
    pytest.param("\ud800", id="lone-surrogate"),
]

# Each bad id, with the id a lossy backend would have stored it under (U+FFFD for an
# encoder that replaces, the first MAX_ID_LENGTH characters for one that truncates).
BAD_IDS = [
    pytest.param("\ud800", "\ufffd", id="lone-surrogate"),
    pytest.param("x" * (MAX_ID_LENGTH + 1), "x" * MAX_ID_LENGTH, id="too-long"),
]

# Depths that break MAX_JSON_DEPTH, from just past it to far past any recursion limit.
TOO_DEEP = [MAX_JSON_DEPTH + 1, 200, 600, 1000, 100_000]

# An int with more digits than Python's int/str conversion takes, so JSON cannot carry it.
TOO_LONG_INT = 10**5000

MESSAGES_THAT_ARE_NOT_MESSAGES = [
    pytest.param("plain string", id="str"),
    pytest.param(42, id="int"),
    pytest.param(None, id="none"),
    pytest.param([text_message("ok"), "not a message"], id="str-in-list"),
    pytest.param([text_message("ok"), 7], id="int-in-list"),
    pytest.param([{"role": "user", "content": [{"type": "nope"}]}], id="unknown-content-type"),
    pytest.param([{"role": 5}], id="role-not-a-str"),
    pytest.param([{"role": "user", "content": 5}], id="content-a-number"),
]


def nested(levels: int) -> dict[str, Any]:
    """A dict nesting ``levels`` deep ({"leaf": True} is 1), lists and dicts alternating.

    Built bottom-up in a loop, so any depth is cheap to build and never recurses.
    """
    value: Any = {"leaf": True}
    for level in range(levels - 2):
        value = [value] if level % 2 == 0 else {"k": value}
    return {"top": value} if levels > 1 else value


@functools.cache
def eleven_megabytes_of_distinct_words() -> str:
    return " ".join(f"w{i:08d}" for i in range(1_100_000))


async def rejected(call: Awaitable[object], field: str) -> InvalidArgumentError:
    """Await ``call``, which must raise InvalidArgumentError naming ``field``."""
    with pytest.raises(InvalidArgumentError) as raised:
        await call
    assert raised.value.field == field
    return raised.value


async def no_memories(service: MemoryService, user_id: str = USER) -> None:
    assert await service.list_memory(user_id, {"page_size": MAX_PAGE_SIZE}) == []


async def no_sessions(service: SessionHistoryService, user_id: str = USER) -> None:
    assert await service.list_sessions(user_id) == []
    assert (await service.get_session(user_id, SESSION)).messages == []


async def no_states(service: StateService, user_id: str = USER) -> None:
    assert await service.list_states(user_id) == []
    assert await service.list_states(user_id, SESSION) == []
    # Catches a round stored under any session, the rejected one included.
    if Capability.LIST_SESSIONS in service.capabilities:
        assert await service.list_session_ids(user_id) == []


def message_with(**fields: Any) -> Message:
    return Message(role="user", content=[TextContent(text="tea")], **fields)


# ------------------------------------------------------------------ memory: add_memory


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_memory_metadata_must_be_json(memory_service: MemoryService, bad: object) -> None:
    message = message_with(metadata={"ok": 1, "bad": bad})
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].metadata.bad")
    await no_memories(memory_service)


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_memory_extra_fields_must_be_json(memory_service: MemoryService, bad: object) -> None:
    message = message_with(bad=bad)
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].bad")
    await no_memories(memory_service)


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_memory_data_content_must_be_json(memory_service: MemoryService, bad: object) -> None:
    message = Message(role="user", content=[DataContent(data={"bad": bad})])
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].content[0].data.bad")
    await no_memories(memory_service)


async def test_memory_int_too_long_for_json_is_rejected(memory_service: MemoryService) -> None:
    message = message_with(metadata={"bad": TOO_LONG_INT})
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].metadata.bad")
    await no_memories(memory_service)


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_memory_metadata_keys_must_be_strings_of_valid_unicode(
    memory_service: MemoryService, key: object
) -> None:
    message = message_with(metadata={"inner": {key: "x"}})
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].metadata.inner")
    await no_memories(memory_service)


async def test_memory_top_level_metadata_keys_must_be_strings(
    memory_service: MemoryService,
) -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "tea"}], "metadata": {1: "x"}}
    with pytest.raises(InvalidArgumentError) as raised:
        await memory_service.add_memory(USER, [message])
    assert raised.value.field.startswith("messages")
    assert "metadata" in raised.value.field
    await no_memories(memory_service)


async def test_memory_text_must_be_valid_unicode(memory_service: MemoryService) -> None:
    message = text_message("tea \ud800")
    await rejected(memory_service.add_memory(USER, [message]), "messages[0].content[0].text")
    await no_memories(memory_service)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_memory_user_id_is_checked(
    memory_service: MemoryService, bad: str, lossy: str
) -> None:
    await rejected(memory_service.add_memory(bad, [text_message("tea")]), "user_id")
    await no_memories(memory_service, lossy)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_memory_session_id_is_checked(
    memory_service: MemoryService, bad: str, lossy: str
) -> None:
    add = memory_service.add_memory(USER, [text_message("tea")], session_id=bad)
    await rejected(add, "session_id")
    await no_memories(memory_service)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_memory_message_id_is_checked(
    memory_service: MemoryService, bad: str, lossy: str
) -> None:
    await rejected(memory_service.add_memory(USER, [message_with(id=bad)]), "messages[0].id")
    await no_memories(memory_service)


async def test_memory_metadata_at_the_depth_limit_reads_back_equal(
    memory_service: MemoryService,
) -> None:
    # The message is the first level, its metadata the second.
    deepest = nested(MAX_JSON_DEPTH - 1)
    await memory_service.add_memory(USER, [message_with(metadata=deepest)])
    [stored] = await memory_service.list_memory(USER)
    assert stored.metadata == deepest


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, *TOO_DEEP])
async def test_memory_metadata_too_deep_is_rejected(
    memory_service: MemoryService, levels: int
) -> None:
    message = message_with(metadata=nested(levels))
    await rejected(memory_service.add_memory(USER, [message]), "messages[0]")
    await no_memories(memory_service)


async def test_memory_message_over_the_size_limit_is_rejected(
    memory_service: MemoryService,
) -> None:
    message = text_message("x" * MAX_MESSAGE_BYTES)
    await rejected(memory_service.add_memory(USER, [message]), "messages[0]")
    await no_memories(memory_service)


async def test_memory_message_size_counts_utf8_bytes(memory_service: MemoryService) -> None:
    # Fewer characters than MAX_MESSAGE_BYTES, but two bytes each in UTF-8.
    message = text_message("é" * (MAX_MESSAGE_BYTES // 2 + 1))
    await rejected(memory_service.add_memory(USER, [message]), "messages[0]")
    await no_memories(memory_service)


async def test_memory_eleven_megabyte_text_is_rejected_before_indexing(
    memory_service: MemoryService,
) -> None:
    message = text_message(eleven_megabytes_of_distinct_words())
    started = time.monotonic()
    await rejected(memory_service.add_memory(USER, [message]), "messages[0]")
    # Indexing these words takes tens of seconds; refusing them takes milliseconds.
    assert time.monotonic() - started < 5
    await no_memories(memory_service)


async def test_memory_batch_over_the_message_count_limit_is_rejected(
    memory_service: MemoryService,
) -> None:
    batch = [text_message(f"m{i}") for i in range(MAX_BATCH_MESSAGES + 1)]
    await rejected(memory_service.add_memory(USER, batch), "messages")
    await no_memories(memory_service)


async def test_memory_batch_over_the_size_limit_is_rejected(
    memory_service: MemoryService,
) -> None:
    each = MAX_MESSAGE_BYTES - 1024
    batch = [text_message("x" * each) for _ in range(MAX_BATCH_BYTES // each + 1)]
    await rejected(memory_service.add_memory(USER, batch), "messages")
    await no_memories(memory_service)


@pytest.mark.parametrize("bad", MESSAGES_THAT_ARE_NOT_MESSAGES)
async def test_memory_messages_that_are_not_messages_are_rejected(
    memory_service: MemoryService, bad: object
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await memory_service.add_memory(USER, bad)  # type: ignore[arg-type]
    assert raised.value.field.startswith("messages")
    await no_memories(memory_service)


async def test_memory_rejected_message_in_a_batch_stores_none_of_it(
    memory_service: MemoryService,
) -> None:
    batch = [text_message("fine"), message_with(metadata={"bad": math.nan})]
    await rejected(memory_service.add_memory(USER, batch), "messages[1].metadata.bad")
    await no_memories(memory_service)


# ------------------------------------------------------------------ memory: reading


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        pytest.param({"page_num": 10**15}, "filters.page_num", id="page_num-1e15"),
        pytest.param(
            {"page_num": MAX_LIST_OFFSET // MAX_PAGE_SIZE + 2, "page_size": MAX_PAGE_SIZE},
            "filters.page_num",
            id="offset-past-limit",
        ),
        pytest.param({"page_size": MAX_PAGE_SIZE + 1}, "filters.page_size", id="page_size"),
    ],
)
async def test_memory_list_beyond_the_offset_limit_is_rejected(
    memory_service: MemoryService, filters: dict[str, int], field: str
) -> None:
    await memory_service.add_memory(USER, [text_message("tea")])
    await rejected(memory_service.list_memory(USER, filters), field)
    assert texts(await memory_service.list_memory(USER)) == ["tea"]


# ------------------------------------------------------------------ session history


def fresh_session() -> Session:
    return Session(id=SESSION, user_id=USER)


async def append_rejected(
    service: SessionHistoryService, message: object, field: str, session: Session | None = None
) -> None:
    """Append ``message`` to a session not stored yet: rejected, and nothing stored."""
    target = session or fresh_session()
    await rejected(service.append_message(target, message), field)  # type: ignore[arg-type]
    assert target.messages == []
    await no_sessions(service)


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_history_metadata_must_be_json(
    session_service: SessionHistoryService, bad: object
) -> None:
    message = message_with(metadata={"ok": 1, "bad": bad})
    await append_rejected(session_service, [message], "message[0].metadata.bad")


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_history_extra_fields_must_be_json(
    session_service: SessionHistoryService, bad: object
) -> None:
    await append_rejected(session_service, [message_with(bad=bad)], "message[0].bad")


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_history_data_content_must_be_json(
    session_service: SessionHistoryService, bad: object
) -> None:
    message = Message(role="user", content=[DataContent(data={"bad": bad})])
    await append_rejected(session_service, [message], "message[0].content[0].data.bad")


async def test_history_int_too_long_for_json_is_rejected(
    session_service: SessionHistoryService,
) -> None:
    message = message_with(metadata={"bad": TOO_LONG_INT})
    await append_rejected(session_service, [message], "message[0].metadata.bad")


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_history_metadata_keys_must_be_strings_of_valid_unicode(
    session_service: SessionHistoryService, key: object
) -> None:
    message = message_with(metadata={"inner": {key: "x"}})
    await append_rejected(session_service, [message], "message[0].metadata.inner")


async def test_history_text_must_be_valid_unicode(session_service: SessionHistoryService) -> None:
    message = text_message("tea \ud800")
    await append_rejected(session_service, [message], "message[0].content[0].text")


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_history_user_id_is_checked(
    session_service: SessionHistoryService, bad: str, lossy: str
) -> None:
    await rejected(session_service.create_session(bad, SESSION), "user_id")
    session = Session(id=SESSION, user_id=bad)
    await rejected(
        session_service.append_message(session, [text_message("tea")]), "session.user_id"
    )
    await no_sessions(session_service, lossy)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_history_session_id_is_checked(
    session_service: SessionHistoryService, bad: str, lossy: str
) -> None:
    await rejected(session_service.create_session(USER, bad), "session_id")
    session = Session(id=bad, user_id=USER)
    await append_rejected(session_service, [text_message("tea")], "session.id", session)
    assert (await session_service.get_session(USER, lossy)).messages == []


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_history_message_id_is_checked(
    session_service: SessionHistoryService, bad: str, lossy: str
) -> None:
    await append_rejected(session_service, [message_with(id=bad)], "message[0].id")


async def test_history_metadata_at_the_depth_limit_reads_back_equal(
    session_service: SessionHistoryService,
) -> None:
    deepest = nested(MAX_JSON_DEPTH - 1)
    await session_service.append_message(fresh_session(), [message_with(metadata=deepest)])
    [stored] = (await session_service.get_session(USER, SESSION)).messages
    assert stored.metadata == deepest


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, *TOO_DEEP])
async def test_history_metadata_too_deep_is_rejected(
    session_service: SessionHistoryService, levels: int
) -> None:
    message = message_with(metadata=nested(levels))
    await append_rejected(session_service, [message], "message[0]")


async def test_history_message_over_the_size_limit_is_rejected(
    session_service: SessionHistoryService,
) -> None:
    message = text_message("x" * MAX_MESSAGE_BYTES)
    await append_rejected(session_service, [message], "message[0]")


async def test_history_batch_over_the_message_count_limit_is_rejected(
    session_service: SessionHistoryService,
) -> None:
    batch = [text_message(f"m{i}") for i in range(MAX_BATCH_MESSAGES + 1)]
    await append_rejected(session_service, batch, "message")


async def test_history_batch_over_the_size_limit_is_rejected(
    session_service: SessionHistoryService,
) -> None:
    each = MAX_MESSAGE_BYTES - 1024
    batch = [text_message("x" * each) for _ in range(MAX_BATCH_BYTES // each + 1)]
    await append_rejected(session_service, batch, "message")


@pytest.mark.parametrize("bad", MESSAGES_THAT_ARE_NOT_MESSAGES)
async def test_history_messages_that_are_not_messages_are_rejected(
    session_service: SessionHistoryService, bad: object
) -> None:
    session = fresh_session()
    with pytest.raises(InvalidArgumentError) as raised:
        await session_service.append_message(session, bad)  # type: ignore[arg-type]
    assert raised.value.field.startswith("message")
    assert session.messages == []
    await no_sessions(session_service)


async def test_history_rejected_message_in_a_batch_appends_none_of_it(
    session_service: SessionHistoryService,
) -> None:
    session = await session_service.create_session(USER, SESSION)
    await session_service.append_message(session, text_message("before"))
    batch = [text_message("fine"), message_with(metadata={"bad": math.inf})]
    await rejected(session_service.append_message(session, batch), "message[1].metadata.bad")
    assert texts(session.messages) == ["before"]
    assert texts((await session_service.get_session(USER, SESSION)).messages) == ["before"]


# ------------------------------------------------------------------ state


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_state_values_must_be_json(state_service: StateService, bad: object) -> None:
    await rejected(state_service.save_state(USER, {"ok": 1, "bad": bad}), "state.bad")
    await no_states(state_service)


@pytest.mark.parametrize("bad", NOT_JSON)
async def test_nested_state_values_must_be_json(state_service: StateService, bad: object) -> None:
    state = {"outer": [{"bad": bad}]}
    await rejected(state_service.save_state(USER, state, SESSION), "state.outer[0].bad")
    await no_states(state_service)


async def test_state_int_too_long_for_json_is_rejected(state_service: StateService) -> None:
    await rejected(state_service.save_state(USER, {"bad": TOO_LONG_INT}), "state.bad")
    await no_states(state_service)


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_state_keys_must_be_strings_of_valid_unicode(
    state_service: StateService, key: object
) -> None:
    await rejected(state_service.save_state(USER, {key: "x"}), "state")  # type: ignore[dict-item]
    await rejected(state_service.save_state(USER, {"inner": {key: "x"}}), "state.inner")
    await no_states(state_service)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_state_user_id_is_checked(state_service: StateService, bad: str, lossy: str) -> None:
    await rejected(state_service.save_state(bad, {"n": 1}), "user_id")
    await no_states(state_service, lossy)


@pytest.mark.parametrize(("bad", "lossy"), BAD_IDS)
async def test_state_session_id_is_checked(
    state_service: StateService, bad: str, lossy: str
) -> None:
    await rejected(state_service.save_state(USER, {"n": 1}, session_id=bad), "session_id")
    await no_states(state_service)
    assert await state_service.list_states(USER, lossy) == []


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
async def test_state_within_the_depth_limit_reads_back_equal(
    state_service: StateService, levels: int
) -> None:
    # The state itself is the first level.
    state = nested(levels)
    assert await state_service.save_state(USER, state) == 1
    assert await state_service.export_state(USER) == state


@pytest.mark.parametrize("levels", TOO_DEEP)
async def test_state_too_deep_is_rejected(state_service: StateService, levels: int) -> None:
    await rejected(state_service.save_state(USER, nested(levels)), "state")
    await no_states(state_service)


async def test_state_over_the_size_limit_is_rejected(state_service: StateService) -> None:
    await rejected(state_service.save_state(USER, {"blob": "x" * MAX_STATE_BYTES}), "state")
    await no_states(state_service)


async def test_state_size_counts_utf8_bytes(state_service: StateService) -> None:
    # Fewer characters than MAX_STATE_BYTES, but two bytes each in UTF-8.
    state = {"blob": "é" * (MAX_STATE_BYTES // 2 + 1)}
    await rejected(state_service.save_state(USER, state), "state")
    await no_states(state_service)


@pytest.mark.parametrize(
    "round_id",
    [
        pytest.param(MAX_ROUND_ID + 1, id="2**53"),
        pytest.param(2**63, id="2**63"),
        pytest.param(0, id="0"),
        pytest.param(-1, id="-1"),
    ],
)
async def test_state_round_id_out_of_range_is_rejected(
    state_service: StateService, round_id: int
) -> None:
    await rejected(state_service.save_state(USER, {"n": 1}, round_id=round_id), "round_id")
    await no_states(state_service)


async def test_state_after_the_last_round_an_automatic_round_is_rejected(
    state_service: StateService,
) -> None:
    assert await state_service.save_state(USER, {"n": "last"}, round_id=MAX_ROUND_ID) == (
        MAX_ROUND_ID
    )
    await rejected(state_service.save_state(USER, {"n": "overwrite?"}), "round_id")
    assert await state_service.list_states(USER) == [MAX_ROUND_ID]
    assert await state_service.export_state(USER) == {"n": "last"}
