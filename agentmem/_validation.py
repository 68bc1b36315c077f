"""The write validator and argument checks of every service, run by the service bases.

Everything a caller hands to a service passes here before any backend sees it, so every
backend rejects the same input with the same :class:`InvalidArgumentError` and stores
nothing. The limits are those of :mod:`agentmem.limits`. The JSON checks walk values
with an explicit stack, so no input can exhaust Python's recursion limit.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError

from agentmem.errors import InvalidArgumentError
from agentmem.limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_ID_LENGTH,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    MAX_LIST_OFFSET,
    MAX_MESSAGE_BYTES,
    MAX_PAGE_SIZE,
    MAX_ROUND_ID,
    MAX_STATE_BYTES,
    MAX_TOP_K,
)
from agentmem.schemas.agent_schemas import Message, to_message
from agentmem.search.ranking import SearchFilters

__all__ = [
    "DEFAULT_SESSION_ID",
    "ListFilters",
    "check_created_at",
    "check_id",
    "check_messages",
    "check_optional_id",
    "check_round_id",
    "check_state",
    "new_session_id",
    "parse_list_filters",
    "parse_search_filters",
    "session_or_default",
]

# Integers must print as JSON: Python refuses to print ints of more digits than this.
_INT_BOUND = 10**MAX_INT_DIGITS

# The session that memories and states belong to when the caller names none.
DEFAULT_SESSION_ID = "default"


def _check_text(value: str, field: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                field, "must be valid Unicode (it holds a lone surrogate)"
            ) from None


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a usable id: a non-blank string of valid Unicode of at
    most :data:`~agentmem.limits.MAX_ID_LENGTH` characters."""
    if not isinstance(value, str):
        raise InvalidArgumentError(name, f"must be a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(name, f"must be a non-blank string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(
            name, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}"
        )
    _check_text(value, name)
    return value


def check_optional_id(value: object, name: str) -> str | None:
    """Like :func:`check_id`, but ``None`` passes through."""
    return None if value is None else check_id(value, name)


def session_or_default(session_id: object) -> str:
    """The checked ``session_id``, or :data:`DEFAULT_SESSION_ID` for None."""
    return check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID


def new_session_id(session_id: object) -> str:
    """The id of a session to create: the given one, or a new uuid if it is None or blank."""
    if session_id is None or (isinstance(session_id, str) and not session_id.strip()):
        return str(uuid.uuid4())
    return check_id(session_id, "session_id")


def check_round_id(round_id: object, *, optional: bool = True) -> int | None:
    """Return ``round_id`` if it is an int in 1..:data:`~agentmem.limits.MAX_ROUND_ID`."""
    if round_id is None and optional:
        return None
    if not isinstance(round_id, int) or isinstance(round_id, bool):
        raise InvalidArgumentError("round_id", f"must be an int, got {type(round_id).__name__}")
    if not 1 <= round_id <= MAX_ROUND_ID:
        raise InvalidArgumentError(
            "round_id", f"must be between 1 and 2**53 - 1 ({MAX_ROUND_ID}), got {round_id}"
        )
    return round_id


# A place in a value being checked: (parent place, key), the root being (None, field).
# Linked rather than copied at every level, and spelt out only for an error message.
_Place = tuple["_Place | None", str | int]


def _path(place: _Place) -> str:
    parts: list[str | int] = []
    node: _Place | None = place
    while node is not None:
        parts.append(node[1])
        node = node[0]
    text = ""
    for part in reversed(parts):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _check_scalar(item: object, place: _Place) -> int | None:
    """Check a JSON scalar; its characters counted toward the size, None if no scalar."""
    if isinstance(item, str):
        if not item.isascii():
            _check_text(item, _path(place))
        return len(item)
    if item is None or isinstance(item, bool):
        return 0
    if isinstance(item, int):
        if not -_INT_BOUND < item < _INT_BOUND:
            raise InvalidArgumentError(
                _path(place), f"must be an integer of at most {MAX_INT_DIGITS} digits"
            )
        return 0
    if isinstance(item, float):
        if not math.isfinite(item):
            raise InvalidArgumentError(
                _path(place), f"must be a finite number (JSON has no {item})"
            )
        return 0
    return None


# Fields pydantic has already held to strings or booleans: serializing catches the one
# thing they can still carry wrong (a lone surrogate), so the walk, which runs for every
# message written, skips them.
_TYPED_SCALARS: frozenset[object] = frozenset({str, bool, str | None, bool | None})


@functools.cache
def _walked_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The declared fields of ``model`` that may hold more than a string or a boolean."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if info.annotation not in _TYPED_SCALARS and get_origin(info.annotation) is not Literal
    )


def _check_json_value(
    value: object, field: str, max_bytes: int, *, every_field: bool = False
) -> None:
    """Check that ``value`` is strict JSON within the depth limit, without recursion.

    Strict JSON: dicts with string keys, lists, strings of valid Unicode, finite floats,
    ints of at most :data:`~agentmem.limits.MAX_INT_DIGITS` digits, booleans and None.
    Pydantic models count as objects of their fields (only those that may hold more than
    a string or a boolean, unless ``every_field``). Strings are summed on the way, so an
    oversized value is refused before it is serialized.
    """
    root: _Place = (None, field)
    characters = _check_scalar(value, root)
    if characters is not None:
        return
    characters = 0
    stack: list[tuple[object, _Place, int]] = [(value, root, 1)]
    while stack:
        item, place, depth = stack.pop()
        entries: Any
        keyed = True
        if isinstance(item, dict):
            entries = item.items()
        elif isinstance(item, BaseModel):
            fields = item.__dict__
            entries = [
                *(
                    fields.items()
                    if every_field
                    else ((name, fields[name]) for name in _walked_fields(type(item)))
                ),
                *(item.__pydantic_extra__ or {}).items(),
            ]
        elif isinstance(item, list):
            entries = enumerate(item)
            keyed = False
        else:
            raise InvalidArgumentError(
                _path(place),
                f"must hold only JSON values (dict, list, str, int, float, bool, None), "
                f"got {type(item).__name__}",
            )
        if depth > MAX_JSON_DEPTH:
            raise InvalidArgumentError(field, f"must nest at most {MAX_JSON_DEPTH} levels deep")
        for key, child in entries:
            if keyed:
                if not isinstance(key, str):
                    raise InvalidArgumentError(
                        _path(place), f"keys must be strings, got {type(key).__name__}"
                    )
                characters += len(key)
                if not key.isascii():
                    _check_text(key, _path(place))
            counted = _check_scalar(child, (place, key))
            if counted is None:
                stack.append((child, (place, key), depth + 1))
            else:
                characters += counted
        if characters > max_bytes:
            raise InvalidArgumentError(field, f"must be at most {max_bytes} bytes of JSON")


def _invalid(exc: PydanticValidationError, field: str) -> InvalidArgumentError:
    """Pydantic's first error, as the error of the place it names within ``field``."""
    error = exc.errors()[0]
    place: _Place = (None, field)
    for part in error["loc"]:
        place = (place, part)
    return InvalidArgumentError(_path(place), error["msg"])


def _check_size(encoded: bytes | str, field: str, max_bytes: int) -> None:
    size = len(encoded.encode("utf-8") if isinstance(encoded, str) else encoded)
    if size > max_bytes:
        raise InvalidArgumentError(field, f"must be at most {max_bytes} bytes of JSON, got {size}")


def check_messages(values: object, field: str = "messages", *, copy: bool = True) -> list[Message]:
    """Validated copies of one message or a list of them (objects or dicts), all or none.

    Each message must be strict JSON within :data:`~agentmem.limits.MAX_JSON_DEPTH` and
    :data:`~agentmem.limits.MAX_MESSAGE_BYTES`, with an id of at most
    :data:`~agentmem.limits.MAX_ID_LENGTH` characters; a call takes at most
    :data:`~agentmem.limits.MAX_BATCH_MESSAGES` messages and
    :data:`~agentmem.limits.MAX_BATCH_BYTES`. The copies are what a JSON round trip
    gives, so what a backend stores is what it returns. ``copy=False`` returns the
    validated messages themselves (a caller's :class:`Message` objects stay theirs),
    for callers that only serialize them.
    """
    single = isinstance(values, Message | Mapping)
    if single:
        items: list[object] = [values]
    elif isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgumentError(
            field, f"must be a Message, a dict or a list of them, got {type(values).__name__}"
        )
    else:
        items = list(values)
    if len(items) > MAX_BATCH_MESSAGES:
        raise InvalidArgumentError(
            field, f"must be at most {MAX_BATCH_MESSAGES} messages per call, got {len(items)}"
        )
    copies: list[Message] = []
    total = 0
    for position, item in enumerate(items):
        name = field if single else f"{field}[{position}]"
        try:
            message = to_message(item)
        except PydanticValidationError as exc:
            raise _invalid(exc, name) from None
        except TypeError as exc:
            raise InvalidArgumentError(name, str(exc)) from None
        check_id(message.id, f"{name}.id")
        _check_json_value(message, name, MAX_MESSAGE_BYTES)
        try:
            encoded = message.__pydantic_serializer__.to_json(message)
        except PydanticSerializationError:
            # A string field the walk skipped: walk them all to name it.
            _check_json_value(message, name, MAX_MESSAGE_BYTES, every_field=True)
            raise InvalidArgumentError(name, "must serialize as JSON") from None
        _check_size(encoded, name, MAX_MESSAGE_BYTES)
        total += len(encoded)
        if total > MAX_BATCH_BYTES:
            raise InvalidArgumentError(
                field, f"must be at most {MAX_BATCH_BYTES} bytes of JSON per call"
            )
        copies.append(Message.model_validate_json(encoded) if copy else message)
    return copies


def check_state(state: object) -> dict[str, Any]:
    """A copy of a state: a dict of strict JSON within the depth and size limits."""
    if not isinstance(state, Mapping):
        raise InvalidArgumentError("state", f"must be a dict, got {type(state).__name__}")
    value = dict(state)
    _check_json_value(value, "state", MAX_STATE_BYTES)
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    _check_size(encoded, "state", MAX_STATE_BYTES)
    copied: dict[str, Any] = json.loads(encoded)
    return copied


def check_created_at(value: object) -> float | None:
    """A creation time given on import, as Unix seconds: a datetime (naive is UTC) or a
    finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            # Every backend reads its times back as datetimes: refuse what none can be.
            datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidArgumentError(
                "created_at", f"must be a time a datetime can hold, got {value!r}"
            ) from None
        return float(value)
    raise InvalidArgumentError("created_at", f"must be a datetime or Unix seconds, got {value!r}")


def _timestamp(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class _SearchFilterModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    top_k: int = Field(default=100, ge=1, le=MAX_TOP_K)
    session_id: str | None = None
    start_time: datetime | float | None = None
    end_time: datetime | float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    min_score: float | None = None

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: str | None) -> str | None:
        return check_optional_id(value, "session_id")


class ListFilters(BaseModel):
    """Validated ``filters`` of ``list_memory``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    page_num: int = Field(default=1, ge=1)
    page_size: int = Field(default=10, ge=1, le=MAX_PAGE_SIZE)
    session_id: str | None = None

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: str | None) -> str | None:
        return check_optional_id(value, "session_id")

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size


def _filters(filters: object) -> dict[str, Any]:
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise InvalidArgumentError(
            "filters", f"must be a dict or None, got {type(filters).__name__}"
        )
    return dict(filters)


def parse_search_filters(filters: object) -> SearchFilters:
    """Validate the ``filters`` of ``search_memory``.

    Known keys: ``top_k`` (1..:data:`~agentmem.limits.MAX_TOP_K`, default 100),
    ``session_id``, ``start_time`` and ``end_time`` (datetime, naive meaning UTC, or Unix
    seconds), ``metadata`` (a dict that a memory's metadata must contain) and
    ``min_score``. Unknown keys raise, so a misspelt filter never silently widens a
    search.
    """
    raw = _filters(filters)
    try:
        model = _SearchFilterModel.model_validate(raw)
    except PydanticValidationError as exc:
        raise _invalid(exc, "filters") from None
    _check_json_value(model.metadata, "filters.metadata", MAX_MESSAGE_BYTES)
    for name in ("start_time", "end_time", "min_score"):
        number = getattr(model, name)
        if isinstance(number, float) and not math.isfinite(number):
            raise InvalidArgumentError(f"filters.{name}", "must be a finite number")
    return SearchFilters(
        top_k=model.top_k,
        session_id=model.session_id,
        start_time=_timestamp(model.start_time),
        end_time=_timestamp(model.end_time),
        metadata=model.metadata,
        min_score=model.min_score,
    )


def parse_list_filters(filters: object) -> ListFilters:
    """Validate the ``filters`` of ``list_memory``: ``page_num``, ``page_size``
    (1..:data:`~agentmem.limits.MAX_PAGE_SIZE`) and ``session_id``; the offset they
    make may not pass :data:`~agentmem.limits.MAX_LIST_OFFSET`."""
    try:
        page = ListFilters.model_validate(_filters(filters))
    except PydanticValidationError as exc:
        raise _invalid(exc, "filters") from None
    if page.offset > MAX_LIST_OFFSET:
        raise InvalidArgumentError(
            "filters.page_num",
            f"(page_num - 1) * page_size must be at most {MAX_LIST_OFFSET}, got {page.offset}",
        )
    return page
