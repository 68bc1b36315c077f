"""Helpers shared by the hosted backends."""

from __future__ import annotations

import hashlib
import time

__all__ = ["MicrosecondClock", "id_key"]


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
