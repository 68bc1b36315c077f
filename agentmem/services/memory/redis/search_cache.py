"""What searches read of users' indexes, kept in the process between searches.

A search reads a user's postings, index entries (:class:`~agentmem.search.ranking.DocInfo`),
neighbour ids and messages. Read from Redis and decoded anew, they cost several times
the ranking itself, so what searches read stays here, and a search asks Redis only for
what it does not find here current.

Currency. Which reads are current follows from the user's :class:`DataVersion`. Every
script a search runs replies with it first, read atomically with the rest, and each
reply *validates* the user's :class:`UserCache`: another epoch or removal count replaces
it with an empty one (see :class:`DataVersion`); a higher ``next_id`` only ends what
holds at one state alone (``at`` in :meth:`UserCache.keep`). A search serves nothing
from the cache before a reply of its own has validated it, so it sees every write
acknowledged before it started, whichever process made it. The first read of a lexical
search, the postings (``lua/postings.lua``), is the one that validates; it also brings
the postings added since those cached, in the same round trip. What a reply brings is
kept in the cache that reply validated, by *kind* (``"docs"``, ``"postings"``...) and
key: the cache knows nothing of what the kinds hold, so a new kind of read needs only a
script that replies with the version first. All of a user's keys are in one slot, so
this holds on Redis Cluster as on a single Redis.

Bounds. A user's cache holds at most ``user_bytes`` (:data:`DEFAULT_USER_BYTES` by
default) of estimated Python memory, in two generations that keep what searches read
most recently (see :class:`UserCache`); a service keeps the caches of its ``users`` most
recently searched users (:class:`SearchCache`), so at most ``users * user_bytes`` in all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.errors import CorruptDataError
from agentmem.services._redis import text

__all__ = ["DEFAULT_USER_BYTES", "DataVersion", "SearchCache", "UserCache"]

#: What the cache of one user may hold by default, in (estimated) bytes.
DEFAULT_USER_BYTES = 8 * 1024 * 1024

# A kept item: its value, its estimated cost in bytes, and the next_id it holds at
# alone (None: it holds while the user's memories are only added to).
_Item = tuple[Any, int, int | None]


@dataclass(frozen=True, slots=True)
class DataVersion:
    """Where one user's data stands: the ``epoch``, ``removed`` and ``next_id`` fields of
    its meta hash (see :class:`~agentmem.services.memory.redis.keys.UserKeys`).

    The epoch is random, set when the user's data is created (again, after a deletion of
    the user or its expiry); the removal count grows with every removal of memories and
    every end of a write in steps (which makes older doc ids visible); ``next_id`` is the
    last doc id handed out. While the epoch and the removal count stay the same,
    memories are only added, with ids above ``next_id``: an index entry, a message, a
    neighbour list closed on both sides and the postings up to ``next_id`` read then stay
    true. Data without an epoch (written before epochs existed) is never cached.
    """

    epoch: str
    removed: str
    next_id: int

    @classmethod
    def of(cls, reply: Sequence[Any]) -> DataVersion:
        """The version heading a script's reply (its first three elements)."""
        try:
            return cls(text(reply[0]), text(reply[1]), int(reply[2]))
        except (IndexError, ValueError) as exc:
            raise CorruptDataError("the version of a user's data cannot be decoded") from exc


class UserCache:
    """What searches read of one user's data at one epoch and removal count.

    Items are kept by kind and key, each with an estimated cost in bytes: at most
    ``budget`` in all. They live in two generations: new items go to the young one;
    when it would pass half the budget, the old one is dropped and the young one
    becomes old. An item found in the old generation moves back to the young one, so
    what searches keep reading stays and the rest leaves (an approximate LRU that costs
    no bookkeeping on a hit). An item costing more than half the budget is not kept.
    """

    def __init__(self, version: DataVersion, budget: int) -> None:
        self.epoch = version.epoch
        self.removed = version.removed
        #: The highest next_id a reply has shown with this epoch and removal count.
        self.next_id = version.next_id
        self._budget = budget
        self._young: dict[str, dict[Any, _Item]] = {}
        self._old: dict[str, dict[Any, _Item]] = {}
        self._young_cost = 0

    def holds(self, version: DataVersion) -> bool:
        """Whether what was kept here is still true of the data at ``version``."""
        return (version.epoch, version.removed) == (self.epoch, self.removed)

    def advance(self, next_id: int) -> None:
        """Note that a reply showed ``next_id`` (memories added, nothing removed)."""
        self.next_id = max(self.next_id, next_id)

    def has(self, kind: str) -> bool:
        """Whether anything of ``kind`` is kept."""
        return bool(self._young.get(kind) or self._old.get(kind))

    def found(self, kind: str, keys: Iterable[Any]) -> dict[Any, Any]:
        """The values of ``kind`` kept for ``keys`` and still current, by key."""
        found: dict[Any, Any] = {}
        if not self.has(kind):
            return found
        young = self._young.setdefault(kind, {})
        old = self._old.get(kind, {})
        for key in keys:
            item = young.get(key)
            if item is None:
                item = old.pop(key, None)
                if item is None:
                    continue
                # Read again: back to the young generation, which may turn over.
                young = self._room(kind, item[1])
                young[key] = item
                old = self._old.get(kind, {})
            value, _, at = item
            if at is None or at == self.next_id:
                found[key] = value
        return found

    def admits(self, cost: int) -> bool:
        """Whether an item of ``cost`` would be kept."""
        return cost <= self._budget // 2

    def keep(self, kind: str, items: Iterable[tuple[Any, Any, int]], at: int | None = None) -> None:
        """Keep the (key, value, cost) ``items`` of ``kind``; with ``at``, only while
        next_id is ``at``."""
        if not self._budget or (at is not None and at != self.next_id):
            # Nothing is kept, or they were read at a state that has already passed.
            return
        for key, value, cost in items:
            if cost <= self._budget // 2:
                self._room(kind, cost)[key] = (value, cost, at)

    def _room(self, kind: str, cost: int) -> dict[Any, _Item]:
        """The young generation's items of ``kind``, once room is made for ``cost``
        more (a key kept again counts twice until the generations turn over)."""
        if self._young_cost + cost > self._budget // 2:
            self._old, self._young, self._young_cost = self._young, {}, 0
        self._young_cost += cost
        young = self._young.get(kind)
        if young is None:
            young = self._young[kind] = {}
        return young


class SearchCache:
    """The :class:`UserCache` of the ``users`` most recently searched users of one
    service, each of at most ``user_bytes`` (estimated); the least recently searched
    user leaves first. With ``users=0`` or ``user_bytes=0`` nothing is kept."""

    def __init__(self, users: int, user_bytes: int = DEFAULT_USER_BYTES) -> None:
        self._users = users
        self._user_bytes = user_bytes
        # Keyed by the user's meta key; the most recently validated user last.
        self._caches: OrderedDict[str, UserCache] = OrderedDict()

    def peek(self, user: str) -> UserCache | None:
        """The user's cache as last validated, to tell Redis what it holds: nothing in
        it may be served before a reply has validated it (:meth:`validated`)."""
        return self._caches.get(user)

    def validated(self, user: str, version: DataVersion) -> UserCache:
        """The user's cache, made current for data at ``version`` (read just now)."""
        cache = self._caches.get(user)
        if cache is not None and cache.holds(version):
            cache.advance(version.next_id)
            self._caches.move_to_end(user)
            return cache
        if not (version.epoch and self._users and self._user_bytes):
            self._caches.pop(user, None)
            # No epoch to tell a later state by, or nothing to keep: a cache that keeps
            # nothing.
            return UserCache(version, 0)
        fresh = self._caches[user] = UserCache(version, self._user_bytes)
        self._caches.move_to_end(user)
        while len(self._caches) > self._users:
            self._caches.popitem(last=False)
        return fresh
