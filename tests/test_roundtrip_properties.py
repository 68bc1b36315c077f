"""Whatever valid data a backend accepts, it returns equal: a property of every backend.

Hypothesis writes arbitrary strict JSON within the limits of :mod:`agentmem.limits`
(metadata, message extra fields, data-content payloads, states; unicode, big ints,
floats from -0.0 to the largest and smallest finite ones, empty keys, nested lists and
dicts) and reads it back. "Equal" is compared as canonical JSON, so 1 and 1.0, or 0.0
and -0.0, count as different, as they do to a JSON reader. Each example writes under a
fresh user id of the same service, so examples never see each other's data.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem import (
    MemoryService,
    Message,
    Session,
    SessionHistoryService,
    StateService,
    TextContent,
)
from agentmem.limits import MAX_PAGE_SIZE

ROUND_TRIP = settings(
    max_examples=25,
    deadline=None,
    # The service fixture is shared by the examples on purpose: each uses its own user.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Any valid Unicode (no lone surrogates), including NUL and astral characters.
STRINGS = st.text(st.characters(codec="utf-8"), max_size=20)
KEYS = st.text(st.characters(codec="utf-8"), max_size=8)
IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(str.strip)
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7e308]
)
INTS = st.integers() | st.sampled_from([2**53 + 1, 2**63, 2**64 + 1, -(2**63) - 1, 10**40])
SCALARS = st.none() | st.booleans() | INTS | FLOATS | STRINGS


def json_values(depth: int) -> st.SearchStrategy[Any]:
    """Strict JSON values nesting at most ``depth`` containers deep."""
    if depth == 0:
        return SCALARS
    inner = json_values(depth - 1)
    return SCALARS | st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3)


OBJECTS = st.dictionaries(KEYS, json_values(3), max_size=4)


def extra_fields(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields a pydantic model with ``extra="allow"`` keeps besides its own."""
    names = KEYS.filter(lambda key: key not in model.model_fields)
    return st.dictionaries(names, json_values(2), max_size=3)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    text_part = {"type": "text", "text": draw(STRINGS), **draw(extra_fields(TextContent))}
    data_part = {"type": "data", "data": draw(OBJECTS)}
    return Message.model_validate(
        {
            "role": draw(STRINGS),
            "content": [text_part, data_part],
            "metadata": draw(OBJECTS | st.none()),
            **draw(extra_fields(Message)),
        }
    )


MESSAGE_BATCHES = st.lists(messages(), min_size=1, max_size=3)


def canonical(value: object) -> str:
    """``value`` as JSON with sorted keys: equal exactly when a JSON reader sees equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def canonical_messages(values: list[Message]) -> list[str]:
    return [canonical(message.model_dump()) for message in values]


def fresh_user() -> str:
    return f"prop-{uuid.uuid4().hex}"


@ROUND_TRIP
@given(batch=MESSAGE_BATCHES, session_id=IDS)
async def test_memory_returns_what_it_stored(
    memory_service: MemoryService, batch: list[Message], session_id: str
) -> None:
    user = fresh_user()
    await memory_service.add_memory(user, batch, session_id=session_id)
    stored = await memory_service.list_memory(user, {"page_size": MAX_PAGE_SIZE})
    assert canonical_messages(stored) == canonical_messages(batch)


@ROUND_TRIP
@given(batch=MESSAGE_BATCHES, session_id=IDS)
async def test_session_history_returns_what_it_stored(
    session_service: SessionHistoryService, batch: list[Message], session_id: str
) -> None:
    user = fresh_user()
    await session_service.append_message(Session(id=session_id, user_id=user), batch)
    stored = await session_service.get_session(user, session_id)
    assert canonical_messages(stored.messages) == canonical_messages(batch)


@ROUND_TRIP
@given(state=OBJECTS, session_id=IDS)
async def test_state_returns_what_it_stored(
    state_service: StateService, state: dict[str, Any], session_id: str
) -> None:
    user = fresh_user()
    round_id = await state_service.save_state(user, state, session_id=session_id)
    assert canonical(await state_service.export_state(user, session_id, round_id)) == canonical(
        state
    )
