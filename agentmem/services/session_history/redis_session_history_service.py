"""Sessions in Redis: one list of messages per session, appended atomically."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from typing_extensions import Unpack, override

from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message
from agentmem.services._redis import (
    AGENTSCOPE_PARAMETERS,
    LUA_HELPERS,
    RedisConnection,
    RedisOptions,
    RedisServiceBase,
    decode_id,
    encode_id,
    text,
)
from agentmem.services.base import Capability
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = ["RedisSessionHistoryService"]

# KEYS of every script: the user's session index (sorted by creation), the deadlines of
# its sessions, its counters, then, where the script needs them, the session's message
# list and the ids of its messages (a sorted set scored in append order, trimmed with
# the list). A session exists while it is in the index and its deadline (if any) has not
# passed; its keys and its index entries share that deadline.
_PRELUDE = (
    LUA_HELPERS
    + """
local index, deadlines, meta, messages, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ttl_ms = tonumber(ARGV[1])

local function is_alive(session, now)
  if not redis.call('ZSCORE', index, session) then return false end
  local deadline = redis.call('ZSCORE', deadlines, session)
  return not deadline or tonumber(deadline) >= now
end

local function forget(session)
  redis.call('ZREM', index, session)
  redis.call('ZREM', deadlines, session)
  if redis.call('ZCARD', index) == 0 then redis.call('DEL', meta) end
end

local function register(session, now)
  if not redis.call('ZSCORE', index, session) then
    redis.call('ZADD', index, redis.call('HINCRBY', meta, 'seq', 1), session)
  end
  if ttl_ms > 0 then
    redis.call('ZADD', deadlines, now + ttl_ms, session)
    expire_keys(ttl_ms)
  end
end

-- Records the message ids ARGV[first .. first + n - 1] as stored; returns the positions
-- (1..n) of those the session did not hold yet. A retried append stores nothing twice.
local function claim_ids(first, n)
  local top = redis.call('ZRANGE', ids, -1, -1, 'WITHSCORES')[2]
  local seq, given, fresh, seen, claimed = top and tonumber(top) or 0, {}, {}, {}, {}
  for i = 1, n do given[i] = ARGV[first + i - 1] end
  for i, held in ipairs(call_chunked('ZMSCORE', ids, given)) do
    if not held and not seen[given[i]] then
      seen[given[i]] = true
      seq = seq + 1
      claimed[#claimed + 1] = seq
      claimed[#claimed + 1] = given[i]
      fresh[#fresh + 1] = i
    end
  end
  call_chunked('ZADD', ids, claimed)
  return fresh
end

local function keep_newest(limit)
  if limit > 0 then
    redis.call('LTRIM', messages, -limit, -1)
    redis.call('ZREMRANGEBYRANK', ids, 0, -limit - 1)
  end
end
"""
)

_SCRIPTS = {
    # ARGV: ttl, session. Creates the session, or empties it if it exists.
    "create": _PRELUDE
    + """
local session, now = ARGV[2], now_ms()
if not is_alive(session, now) then forget(session) end
unlink_keys({messages, ids})
register(session, now)
return 1
""",
    # ARGV: ttl, session, max messages (0: no limit), n, n message ids, n messages.
    # Returns how many were stored.
    "append": _PRELUDE
    + """
local session, limit, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms()
if not is_alive(session, now) then
  forget(session)
  unlink_keys({messages, ids})
end
local values = {}
for _, i in ipairs(claim_ids(5, n)) do values[#values + 1] = ARGV[4 + n + i] end
call_chunked('RPUSH', messages, values)
keep_newest(limit)
register(session, now)
return #values
""",
    # The append of a large batch: runs in the transaction that has just pushed the n
    # messages onto the list as plain RPUSH, so they never pass through Lua (except the
    # new ones of a batch that holds some stored ones). ARGV as "append", without the
    # messages.
    "append_pushed": _PRELUDE
    + """
local session, limit, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms()
if not is_alive(session, now) then
  forget(session)
  unlink_keys({ids})
  redis.call('LTRIM', messages, -n, -1)
end
local fresh = claim_ids(5, n)
if #fresh < n then
  local pushed = #fresh > 0 and redis.call('LRANGE', messages, -n, -1) or {}
  redis.call('LTRIM', messages, 0, -n - 1)
  local values = {}
  for _, i in ipairs(fresh) do values[#values + 1] = pushed[i] end
  call_chunked('RPUSH', messages, values)
end
keep_newest(limit)
register(session, now)
return #fresh
""",
    # ARGV: ttl, session. Whether the session is live (refreshing its deadline); runs in
    # a transaction beside the LRANGE that reads its messages.
    "get": _PRELUDE
    + """
local session, now = ARGV[2], now_ms()
if not is_alive(session, now) then return 0 end
register(session, now)
return 1
""",
    # ARGV: ttl, session.
    "delete": _PRELUDE
    + """
unlink_keys({messages, ids})
forget(ARGV[2])
return 1
""",
    # ARGV: ttl. Live sessions in creation order; drops the index entries of expired ones.
    "list": _PRELUDE
    + """
local now = now_ms()
for _, session in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. now)) do
  forget(session)
end
return redis.call('ZRANGE', index, 0, -1)
""",
}

# Above this many bytes of JSON, an append sends its messages as a plain RPUSH (see
# "append_pushed"): passing them through Lua would cost Redis time in proportion to
# their size.
_LUA_BYTES = 256 * 1024


class RedisSessionHistoryService(RedisServiceBase, SessionHistoryService):
    """Sessions in Redis, each a list of JSON messages; safe for many processes at once.

    Connection: ``connection=RedisConnection(...)`` or AgentScope Runtime 1.0's
    arguments, positional or by keyword, as for
    :class:`agentmem.services.memory.redis.RedisMemoryService`.

    An append is one Lua script (for a large batch, a plain ``RPUSH`` and a script in
    one MULTI transaction, so the messages do not pass through Lua): ``RPUSH``
    (then ``LTRIM`` to the newest ``max_messages_per_session``), registration of the
    session in the user's index and its expiry, all atomic and O(messages appended),
    whatever the session's length. A
    message whose id the session already holds is not stored again, so a retried append
    (by redis-py after a timeout, or by the caller after an error) stores each message
    once. ``list_sessions`` reads the user's index, never scans keys.

    ``ttl_seconds`` (default None: never expire) applies per session: when set, a
    session expires as a whole, messages and index entry together, ``ttl_seconds`` after
    it was last created, appended to or read. AgentScope Runtime 1.0 defaulted to 3600;
    pass ``ttl_seconds=3600`` to keep that. An expired session is a session that is not
    stored: ``get_session`` returns it empty and an append stores it anew holding only
    the new messages (the SessionHistoryService rule), never a part of its old ones.

    A message that cannot be decoded (planted or damaged data) makes ``get_session``
    raise :class:`agentmem.errors.CorruptDataError`; other sessions stay readable.
    """

    scripts = _SCRIPTS
    capabilities = frozenset({Capability.IDEMPOTENT_WRITES})
    agentscope_parameters = AGENTSCOPE_PARAMETERS

    def __init__(
        self,
        *args: Any,
        connection: RedisConnection | None = None,
        ttl_seconds: int | None = None,
        max_messages_per_session: int | None = None,
        **options: Unpack[RedisOptions],
    ) -> None:
        super().__init__(
            args,
            connection,
            options,
            ttl_seconds=ttl_seconds,
            max_messages_per_session=max_messages_per_session,
        )

    def _keys(self, user_id: str, session_id: str | None) -> list[str]:
        """The user's keys, and the session's where ``session_id`` is given."""
        names = ["hist:index", "hist:deadlines", "hist:meta"]
        if session_id is not None:
            encoded = encode_id(session_id)
            names += [f"hist:messages:{encoded}", f"hist:ids:{encoded}"]
        return self.keys.user(user_id, *names)

    def _args(self, session_id: str | None, *extra: Any) -> list[Any]:
        """The TTL, the encoded session (where given) and ``extra``: every script's ARGV."""
        session = [] if session_id is None else [encode_id(session_id)]
        return [self.ttl_ms, *session, *extra]

    async def _run(self, script: str, user_id: str, session_id: str | None, *extra: Any) -> Any:
        """Run ``script`` with the user's keys (and the session's), the TTL and ``extra``."""
        return await self.run_script(
            script, self._keys(user_id, session_id), self._args(session_id, *extra)
        )

    @override
    async def _create_session(self, user_id: str, session_id: str) -> None:
        await self._run("create", user_id, session_id)

    @override
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        keys = self._keys(user_id, session_id)
        # The messages come from a plain LRANGE beside the script, not through Lua.
        stored, alive = await self.transaction(
            [("LRANGE", keys[3], 0, -1)], "get", keys, self._args(session_id)
        )
        messages = []
        for position, value in enumerate(stored if alive else []):
            try:
                messages.append(Message.model_validate_json(value))
            except ValidationError as exc:
                raise CorruptDataError(
                    f"message {position} of session {session_id!r} of user {user_id!r} "
                    f"cannot be decoded: {exc.errors()[0]['msg']}"
                ) from exc
        return messages

    @override
    async def _delete_session(self, user_id: str, session_id: str) -> None:
        await self._run("delete", user_id, session_id)

    @override
    async def _list_session_ids(self, user_id: str) -> list[str]:
        return [decode_id(text(value)) for value in await self._run("list", user_id, None)]

    @override
    async def _append_messages(
        self, user_id: str, session_id: str, messages: list[Message]
    ) -> None:
        payloads = [item.__pydantic_serializer__.to_json(item) for item in messages]
        keys = self._keys(user_id, session_id)
        args = self._args(session_id, self.max_messages, len(messages))
        args += [item.id for item in messages]
        if sum(map(len, payloads)) <= _LUA_BYTES:
            await self.run_script("append", keys, args + payloads)
        else:
            await self.transaction([("RPUSH", keys[3], *payloads)], "append_pushed", keys, args)
