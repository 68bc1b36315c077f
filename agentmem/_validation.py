"""Argument checks shared by every service, so every backend rejects the same input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentmem.search.ranking import SearchFilters

__all__ = [
    "DEFAULT_SESSION_ID",
    "ListFilters",
    "check_id",
    "check_optional_id",
    "copy_state",
    "parse_list_filters",
    "parse_search_filters",
]

# The session that memories and states belong to when the caller names none.
DEFAULT_SESSION_ID = "default"


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a usable id: a non-blank string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_optional_id(value: object, name: str) -> str | None:
    """Like :func:`check_id`, but ``None`` passes through."""
    return None if value is None else check_id(value, name)


def _timestamp(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class _SearchFilterModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    top_k: int = Field(default=100, ge=1)
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
    page_size: int = Field(default=10, ge=1, le=10_000)
    session_id: str | None = None

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: str | None) -> str | None:
        return check_optional_id(value, "session_id")

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size


def _check_mapping(filters: object) -> Mapping[str, Any]:
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters must be a dict or None, got {type(filters).__name__}")
    return filters


def parse_search_filters(filters: object) -> SearchFilters:
    """Validate the ``filters`` of ``search_memory``.

    Known keys: ``top_k`` (int >= 1, default 100), ``session_id``, ``start_time`` and
    ``end_time`` (datetime, naive meaning UTC, or Unix seconds), ``metadata`` (a dict
    that a memory's metadata must contain) and ``min_score``. Unknown keys raise, so a
    misspelt filter never silently widens a search.
    """
    model = _SearchFilterModel.model_validate(dict(_check_mapping(filters)))
    return SearchFilters(
        top_k=model.top_k,
        session_id=model.session_id,
        start_time=_timestamp(model.start_time),
        end_time=_timestamp(model.end_time),
        metadata=model.metadata,
        min_score=model.min_score,
    )


def parse_list_filters(filters: object) -> ListFilters:
    """Validate the ``filters`` of ``list_memory``: ``page_num``, ``page_size``, ``session_id``."""
    return ListFilters.model_validate(dict(_check_mapping(filters)))


def copy_state(state: object) -> dict[str, Any]:
    """A deep copy of a state dict, which must be JSON-serializable.

    Every backend stores states as JSON, so a state that would not survive a Redis
    round-trip is refused everywhere, not only in production.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    try:
        copied = json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state must be JSON-serializable: {exc}") from None
    if not isinstance(copied, dict):  # pragma: no cover - a Mapping always dumps as an object
        raise TypeError("state must be a dict")
    return copied
