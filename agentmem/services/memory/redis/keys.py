"""The Redis keys of one user's memories, by name.

All of them carry the user's hash tag, so they live in one cluster slot and every script
gets all of them. The scripts read them into Lua locals of the same names, in the order
of the fields (:data:`LUA_KEY_LOCALS`), so Python and Lua name each key alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from agentmem.services._redis import RedisKeys

__all__ = ["LUA_KEY_LOCALS", "MEMORY_KIND", "UserKeys"]

#: The kind every memory key's name starts with (``<prefix>:{<user>}:mem:...``).
MEMORY_KIND = "mem:"


@dataclass(frozen=True, slots=True)
class UserKeys:
    """One user's memory keys.

    Everything stored is text, so a client that decodes responses reads it too. Every
    Redis entry costs some 60 bytes beyond its content, hence the packed formats: a short
    chat turn costs about 950 bytes of Redis memory. ``<session>`` is an encoded session
    id, which never contains ``:`` or a tab.
    """

    #: Hash: ``next_id``, ``docs`` (count), ``length`` (sum of lengths), ``epoch``
    #: (random, set when the user's data is created), ``removed`` (a count of removals)
    #: and ``sessions`` (a counter ordering ``session_ids``). With ``next_id``, epoch and
    #: removal count tell a reader's cached vectors and search reads what changed.
    meta: str
    #: Hash: doc id -> the message's JSON, defaults left out (:func:`codec.stored_json`).
    docs: str
    #: Sorted set: each memory's index entry (:mod:`codec`), scored by its doc id; found
    #: by score, chronological pages by rank.
    order: str
    #: Sorted set, all scores 0: ``"<session>:<position, 12 digits>:<doc id>:<message
    #: id>"``, each session's memories in order: session pages by rank, neighbours by
    #: lexical range.
    by_session: str
    #: Hash: term -> postings in doc id order (:class:`codec.Postings`); ``"<term>\\t"``
    #: -> the newest postings, moved to ``"<term>"`` in chunks, so an append rewrites at
    #: most a few KB whatever the term's frequency.
    terms: str
    #: Hash: doc id -> base64 of the packed unit vector (semantic search only).
    vectors: str
    #: Hash: term -> base64 of the packed unit vector of its word (semantic search only),
    #: for query expansion; leaves with the term's last posting.
    vocab: str
    #: Sorted set: the user's sessions (encoded), scored in the order first used; a
    #: session leaves when its memories are deleted.
    session_ids: str
    #: Set: ``"<session>:<message id>"`` of every memory stored, so a retried add
    #: stores no message twice in a session.
    message_ids: str
    #: Hash: work in progress. ``"w:<token>"`` -> ``"<first doc id> <count> <flags>
    #: <ms>"``, a write in steps that reserved those doc ids (``flags``: per message of
    #: the call, 1 if new) and last progressed at ``ms``; ``"p:<doc id>"`` -> the next
    #: chunk of ``doc_terms`` whose postings of a removed memory are still to delete.
    #: Searches ignore the postings of all these doc ids.
    pending: str
    #: Hash: ``"<doc id>:<chunk>"`` -> space-separated index terms of a memory written
    #: in steps (its index entry says ``+<chunks>``) or removed in steps.
    doc_terms: str

    @classmethod
    def of(cls, keys: RedisKeys, user_id: str) -> UserKeys:
        """The keys of ``user_id``."""
        return cls(*keys.user(user_id, *_KEY_NAMES))

    def all(self) -> tuple[str, ...]:
        """Every key, in field order: the KEYS of every script."""
        return tuple(getattr(self, name) for name in _FIELDS)


_FIELDS = tuple(field.name for field in fields(UserKeys))
# Key names are field names, but by_session's, which kept the name of data stored
# before, and message_ids', which is short.
_KEY_NAMES = tuple(
    MEMORY_KIND + {"by_session": "session", "message_ids": "ids"}.get(name, name)
    for name in _FIELDS
)

#: The Lua statement that puts each key into a local named as its field.
LUA_KEY_LOCALS = f"local {', '.join(_FIELDS)} = unpack(KEYS)\n"
