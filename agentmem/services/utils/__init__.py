"""Helpers shared by the hosted backends (Tablestore, mem0, ReMe)."""

from __future__ import annotations

import hashlib
import importlib
import time
from typing import Any, TypeVar

from agentmem.errors import CorruptDataError, MissingExtraError, ServiceNotStartedError
from agentmem.schemas.agent_schemas import Message

__all__ = [
    "MicrosecondClock",
    "decode_message",
    "id_key",
    "import_extra",
    "started",
    "stored_text",
]

T = TypeVar("T")


class MicrosecondClock:
    """Microsecond timestamps that never repeat or go back within one process.

    Rows are ordered by these stamps, so messages written in one call keep their order
    even when the wall clock has not moved between them.
    """

    def __init__(self) -> None:
        self._last = 0

    def take(self, count: int = 1) -> int:
        """The first of ``count`` consecutive stamps, all later than any taken before."""
        first = max(time.time_ns() // 1000, self._last + 1)
        self._last = first + count - 1
        return first


def id_key(*parts: str) -> str:
    """A fixed-length key for caller ids, for stores that limit what a key may be.

    Stores limit their keys (Tablestore primary-key strings hold at most 1 KB, ReMe
    names files and indexes after workspaces) while agentmem ids may be any string.
    The SHA-256 of the parts (each length-prefixed, so ``("ab", "c")`` and
    ``("a", "bc")`` differ) fits everywhere and keeps each user's data apart.
    """
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def import_extra(feature: str, extra: str, *modules: str) -> Any:
    """Import ``modules`` and return the first; MissingExtraError naming
    ``agentmem-services[extra]`` if one is not installed."""
    try:
        imported = [importlib.import_module(module) for module in modules]
    except ImportError as exc:
        raise MissingExtraError(feature, extra, exc.name) from exc
    return imported[0]


def started(service: object, handle: T | None) -> T:
    """``handle`` (the client or store ``start()`` opened), or ServiceNotStartedError."""
    if handle is None:
        raise ServiceNotStartedError(service)
    return handle


def stored_text(value: object, where: str) -> str:
    """A string read back from a store, which may hand it back as UTF-8 bytes;
    CorruptDataError naming ``where`` if it is no text."""
    try:
        text = bytes(value).decode("utf-8") if isinstance(value, bytes | bytearray) else value
    except UnicodeDecodeError as exc:
        raise CorruptDataError(f"{where} is not UTF-8: {exc}") from exc
    if not isinstance(text, str):
        raise CorruptDataError(f"{where} holds no text, got {type(value).__name__}")
    return text


def decode_message(raw: object, where: str) -> Message:
    """The message stored as JSON in ``raw``; CorruptDataError naming ``where`` if it is
    not one."""
    try:
        return Message.model_validate_json(stored_text(raw, where))
    except ValueError as exc:
        raise CorruptDataError(f"{where} is not an agentmem message: {exc}") from exc
