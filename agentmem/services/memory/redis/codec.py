"""How memories, index entries, postings and vectors are written as Redis text, and read.

An index entry (a member of the user's ``order`` sorted set) is one line of tab-separated
fields::

    <doc id> <length> <session> <position> <terms> <created_at> <metadata JSON or nothing>

``<terms>`` are the memory's index terms, space-separated (the postings to remove when it
goes), or ``+<chunks>`` for a memory written in steps, whose terms are in that many
chunks of ``doc_terms``; ``<created_at>`` is Unix seconds as Python's ``repr`` of the
float, so it reads back exactly; metadata longer than :data:`INLINE_METADATA` bytes is
left in the message and the entry says ``@``, which keeps every entry small. A posting
is 8 base64 digits: 5 of the doc id (30 bits) and 3 of the term's count in the memory
(fixed width, so a reader can bisect). Anything that does not decode raises
:class:`agentmem.errors.CorruptDataError`.
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import struct
import sys
from array import array
from collections.abc import ItemsView, Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message
from agentmem.search.embeddings import pack_vector, unpack_vector
from agentmem.search.ranking import DocInfo
from agentmem.services._redis import decode_id, text

__all__ = [
    "INLINE_METADATA",
    "MAX_TERM_COUNT",
    "Postings",
    "ascii_bytes",
    "decode_entry",
    "decode_message",
    "decode_vector",
    "encode_posting",
    "encode_vector",
    "entry_id",
    "entry_tail",
    "hidden_ranges",
    "metadata_in_message",
    "stored_json",
    "vector_pairs",
]

#: A term is counted at most this many times per memory (3 base64 digits hold 18 bits).
MAX_TERM_COUNT = 0xFFFF
#: Bytes of metadata JSON kept in an index entry; longer metadata is read from the
#: message when a search filters on it.
INLINE_METADATA = 1024
# The metadata field of an entry whose metadata is in the message.
_IN_MESSAGE = "@"
# Read as a 4-byte and a 2-byte big-endian int, a posting's 6 bytes are
# (id << 2 | count >> 16, count & 0xFFFF).
_POSTING = struct.Struct(">IH")


def stored_json(message: Message) -> str:
    """The stored form of a message: its JSON without the fields left at their defaults.

    Reading it back with ``Message.model_validate_json`` gives an equal message. The
    ``type`` of content parts is kept although it is a default, because it tells which
    kind of part to rebuild. Dropping the defaults halves the size of a typical message,
    which matters here because the index already costs about as much again.
    """
    data = message.model_dump(mode="json", exclude_defaults=True)
    for part, dumped in zip(message.content or (), data.get("content") or (), strict=True):
        dumped["type"] = part.type
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_message(doc_id: int | str, raw: bytes | str) -> Message:
    """The message stored as memory ``doc_id``."""
    try:
        return Message.model_validate_json(raw)
    except ValidationError as exc:
        raise CorruptDataError(
            f"memory {doc_id} cannot be decoded: {exc.errors()[0]['msg']}"
        ) from exc


def entry_tail(created_at: float, metadata: Mapping[str, Any] | None) -> str:
    """The last two fields of an index entry (the script writes the others)."""
    stored = "" if metadata is None else json.dumps(metadata)
    return repr(created_at) + "\t" + (stored if len(stored) <= INLINE_METADATA else _IN_MESSAGE)


@functools.lru_cache(maxsize=4096)
def _session_id(encoded: str) -> str:
    return decode_id(encoded)


def metadata_in_message(raw: bytes | str) -> bool:
    """Whether an index entry leaves the memory's metadata in its message."""
    return text(raw).endswith("\t" + _IN_MESSAGE)


def decode_entry(raw: bytes | str) -> DocInfo:
    """The :class:`DocInfo` in a memory's index entry; its metadata is None where the
    entry leaves it in the message (see :func:`metadata_in_message`)."""
    entry = text(raw)
    try:
        doc_id, length, session, position, _, created_at, metadata = entry.split("\t", 6)
        return DocInfo(
            int(doc_id),
            int(length),
            _session_id(session),
            float(created_at),
            json.loads(metadata) if metadata and metadata != _IN_MESSAGE else None,
            position=int(position),
        )
    except ValueError as exc:
        doc = entry.split("\t", 1)[0][:20]
        raise CorruptDataError(f"the index entry of memory {doc!r} cannot be decoded") from exc


def entry_id(raw: str) -> int:
    """The doc id of an index entry, without decoding the rest."""
    try:
        return int(raw[: raw.index("\t")])
    except ValueError as exc:
        raise CorruptDataError(f"the index entry {raw[:20]!r} cannot be decoded") from exc


def hidden_ranges(flat: Sequence[Any]) -> list[tuple[int, int]]:
    """The doc ids, as ascending inclusive ranges, whose postings searches ignore, from a
    flat HGETALL of a user's ``pending`` hash: those reserved by writes in steps not
    committed yet, and those of removed memories whose postings are still being purged.
    """
    found: list[tuple[int, int]] = []
    for at in range(0, len(flat), 2):
        field = text(flat[at])
        if field.startswith("w:"):
            reserved, count = map(int, text(flat[at + 1]).split(" ", 2)[:2])
            found.append((reserved, reserved + count - 1))
        elif field.startswith("p:"):
            found.append((int(field[2:]), int(field[2:])))
    merged: list[tuple[int, int]] = []
    for first, last in sorted(found):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def ascii_bytes(value: bytes | str) -> bytes:
    """A Redis reply holding ASCII text as bytes, whether or not the client decodes."""
    return value if isinstance(value, bytes) else value.encode("ascii")


def encode_posting(doc_id: int, count: int) -> str:
    """A posting as stored: the doc id's 5 base64 digits, then the count's 3."""
    return base64.b64encode(_POSTING.pack(doc_id << 2 | count >> 16, count & 0xFFFF)).decode()


class Postings(Mapping[int, int]):
    """One term's postings as stored: fixed-width base64, ascending doc ids.

    Decoded from base64 in one call, then read lazily: the ranking reads only the length
    and some lookups of a common term's postings, so those cost O(log n) each instead of
    unpacking every posting.
    """

    def __init__(self, raw: bytes) -> None:
        if len(raw) % 8:
            raise ValueError("postings of the wrong length")
        self._packed = base64.b64decode(raw, validate=True)
        self._size = len(self._packed) // _POSTING.size
        self._heads: array[int] | None = None

    def without(self, ranges: Sequence[tuple[int, int]]) -> Postings:
        """These postings but those of doc ids in the inclusive ``ranges`` (ascending,
        disjoint): the memories a search must not see yet, or any more."""
        heads, width = self._sorted_heads(), _POSTING.size
        kept, start = [], 0
        for first, last in ranges:
            low = bisect.bisect_left(heads, first << 2, start)
            high = bisect.bisect_left(heads, (last + 1) << 2, low)
            kept.append(self._packed[start * width : low * width])
            start = high
        kept.append(self._packed[start * width :])
        result = Postings(b"")
        result._packed = b"".join(kept)
        result._size = len(result._packed) // width
        return result

    def extended(self, newer: Postings) -> Postings:
        """These postings followed by ``newer``, all of whose doc ids are higher."""
        if not newer._size:
            return self
        result = Postings(b"")
        result._packed = self._packed + newer._packed
        result._size = self._size + newer._size
        return result

    def _sorted_heads(self) -> array[int]:
        """The first 4 bytes of every posting as ints (doc id << 2 | count >> 16), which
        sort as the doc ids do; gathered by slicing, without a Python loop."""
        if self._heads is None:
            width, packed = _POSTING.size, self._packed
            gathered = bytearray(4 * self._size)
            for byte in range(4):
                gathered[byte::4] = packed[byte::width]
            # "I" is a C unsigned int: 4 bytes on every platform CPython supports.
            heads = array("I", bytes(gathered))
            if sys.byteorder == "little":
                heads.byteswap()
            self._heads = heads
        return self._heads

    def _find(self, doc_id: object) -> int | None:
        if not isinstance(doc_id, int) or not 0 <= doc_id < 1 << 30:
            return None
        heads = self._sorted_heads()
        at = bisect.bisect_left(heads, doc_id << 2)
        if at < self._size and heads[at] >> 2 == doc_id:
            first, rest = _POSTING.unpack_from(self._packed, at * _POSTING.size)
            return int((first & 3) << 16 | rest)
        return None

    def __getitem__(self, doc_id: object) -> int:
        count = self._find(doc_id)
        if count is None:
            raise KeyError(doc_id)
        return count

    # Without the exception Mapping's versions go through.
    def __contains__(self, doc_id: object) -> bool:
        return self._find(doc_id) is not None

    def get(self, doc_id: object, default: Any = None) -> Any:
        count = self._find(doc_id)
        return default if count is None else count

    def __iter__(self) -> Iterator[int]:
        return (high >> 2 for high, _ in _POSTING.iter_unpack(self._packed))

    def __len__(self) -> int:
        return self._size

    def items(self) -> ItemsView[int, int]:
        return _PostingItems(self)

    def unpacked(self) -> Iterator[tuple[int, int]]:
        """Every (doc id, count), in one pass rather than a search per posting."""
        for high, rest in _POSTING.iter_unpack(self._packed):
            yield high >> 2, (high & 3) << 16 | rest


class _PostingItems(ItemsView[int, int]):
    _mapping: Postings

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return self._mapping.unpacked()


def encode_vector(vector: Any) -> str:
    """A unit vector as stored: base64 of :func:`~agentmem.search.embeddings.pack_vector`."""
    return base64.b64encode(pack_vector(vector)).decode("ascii")


def decode_vector(value: bytes | str) -> Any:
    """The vector :func:`encode_vector` stored."""
    try:
        return unpack_vector(base64.b64decode(value, validate=True))
    except ValueError as exc:
        raise CorruptDataError("a stored vector cannot be decoded") from exc


def vector_pairs(flat: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """(field, decoded vector) pairs of a flat HGETALL reply of a vector hash."""
    for at in range(0, len(flat), 2):
        yield text(flat[at]), decode_vector(flat[at + 1])
