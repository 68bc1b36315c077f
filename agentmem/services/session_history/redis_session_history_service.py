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
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = ["RedisSessionHistoryService"]

# KEYS of every script: the user's session index (sorted by creation), the deadlines of
# its sessions, its counters, then the session's message list where the script needs one.
# A session exists while it is in the index and its deadline (if any) has not passed;
# its list and its index entries share that deadline.
_PRELUDE = (
    LUA_HELPERS
    + """
local index, deadlines, meta = KEYS[1], KEYS[2], KEYS[3]
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
"""
)

_SCRIPTS = {
    # ARGV: ttl, session. Creates the session, or empties it if it exists.
    "create": _PRELUDE
    + """
local session, now = ARGV[2], now_ms()
if not is_alive(session, now) then forget(session) end
redis.call('DEL', KEYS[4])
register(session, now)
return 1
""",
    # ARGV: ttl, session, max messages (0: no limit), messages...
    "append": _PRELUDE
    + """
local session, limit, now = ARGV[2], tonumber(ARGV[3]), now_ms()
if not is_alive(session, now) then
  forget(session)
  redis.call('DEL', KEYS[4])
end
local values = {}
for position = 4, #ARGV do values[#values + 1] = ARGV[position] end
call_chunked('RPUSH', KEYS[4], values)
if limit > 0 then redis.call('LTRIM', KEYS[4], -limit, -1) end
register(session, now)
return 1
""",
    # ARGV: ttl, session. The messages of a live session (refreshing its deadline).
    "get": _PRELUDE
    + """
local session, now = ARGV[2], now_ms()
if not is_alive(session, now) then return {} end
register(session, now)
return redis.call('LRANGE', KEYS[4], 0, -1)
""",
    # ARGV: ttl, session.
    "delete": _PRELUDE
    + """
redis.call('DEL', KEYS[4])
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


class RedisSessionHistoryService(RedisServiceBase, SessionHistoryService):
    """Sessions in Redis, each a list of JSON messages; safe for many processes at once.

    Connection: ``connection=RedisConnection(...)`` or AgentScope Runtime 1.0's
    arguments, positional or by keyword, as for
    :class:`agentmem.services.memory.redis.RedisMemoryService`.

    Appends are one Lua script: ``RPUSH`` (then ``LTRIM`` to the newest
    ``max_messages_per_session``), registration of the session in the user's index and
    its expiry, all atomic and O(messages appended), whatever the session's length.
    ``list_sessions`` reads the user's index, never scans keys.

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

    async def _run(self, script: str, user_id: str, session_id: str | None, *extra: Any) -> Any:
        """Run ``script`` with the user's keys (and the session's), the TTL and ``extra``."""
        names = ["hist:index", "hist:deadlines", "hist:meta"]
        args: list[Any] = [self.ttl_ms]
        if session_id is not None:
            encoded = encode_id(session_id)
            names.append(f"hist:messages:{encoded}")
            args.append(encoded)
        return await self.run_script(script, self.keys.user(user_id, *names), args + list(extra))

    @override
    async def _create_session(self, user_id: str, session_id: str) -> None:
        await self._run("create", user_id, session_id)

    @override
    async def _read_messages(self, user_id: str, session_id: str) -> list[Message]:
        messages = []
        for position, value in enumerate(await self._run("get", user_id, session_id)):
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
        await self._run(
            "append",
            user_id,
            session_id,
            self.max_messages,
            *(item.__pydantic_serializer__.to_json(item) for item in messages),
        )
