"""Sessions in Redis: one list of messages per session, appended atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from typing_extensions import override

from agentmem._validation import check_id
from agentmem.errors import CorruptDataError
from agentmem.schemas.agent_schemas import Message, to_messages
from agentmem.schemas.session import Session
from agentmem.services._redis import (
    DEFAULT_KEY_PREFIX,
    LUA_HELPERS,
    RedisClient,
    RedisServiceBase,
    check_positive,
    decode_id,
    encode_id,
    text,
)
from agentmem.services.session_history.session_history_service import (
    SessionHistoryService,
    check_session,
    resolve_new_session_id,
)

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

    Appends are one Lua script: ``RPUSH`` (then ``LTRIM`` to the newest
    ``max_messages_per_session``), registration of the session in the user's index and
    its expiry, all atomic and O(messages appended), whatever the session's length.
    ``list_sessions`` reads the user's index, never scans keys.

    ``ttl_seconds`` (default 3600, None: never) applies per session: a session expires
    as a whole, messages and index entry together, ``ttl_seconds`` after it was last
    created, appended to or read. An expired session is a session that is not stored:
    ``get_session`` returns it empty and an append stores it anew holding only the new
    messages (the SessionHistoryService rule), never a part of its old ones.

    Connection arguments, ``key_prefix`` and ``cluster`` are those of
    :class:`agentmem.services.memory.redis_memory_service.RedisMemoryService`. A message
    that cannot be decoded (planted or damaged data) makes ``get_session`` raise
    :class:`agentmem.errors.CorruptDataError`; other sessions stay readable.
    """

    scripts = _SCRIPTS

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        redis_client: RedisClient | None = None,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        max_connections: int | None = 50,
        retry_on_timeout: bool = True,
        ttl_seconds: int | None = 3600,
        max_messages_per_session: int | None = None,
        health_check_interval: float | None = 30.0,
        socket_keepalive: bool = True,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        cluster: bool | None = None,
    ) -> None:
        super().__init__(
            redis_url,
            redis_client,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            retry_on_timeout=retry_on_timeout,
            ttl_seconds=ttl_seconds,
            health_check_interval=health_check_interval,
            socket_keepalive=socket_keepalive,
            key_prefix=key_prefix,
            cluster=cluster,
        )
        self._max_messages = (
            check_positive(max_messages_per_session, "max_messages_per_session", optional=True) or 0
        )

    async def _run(
        self, action: str, script: str, user_id: str, session_id: str | None, *extra: Any
    ) -> Any:
        """Run ``script`` with the user's keys (and the session's), the TTL and ``extra``."""
        names = ["hist:index", "hist:deadlines", "hist:meta"]
        args: list[Any] = [self._ttl_ms]
        if session_id is not None:
            encoded = encode_id(session_id)
            names.append(f"hist:messages:{encoded}")
            args.append(encoded)
        return await self.run_script(
            action, script, self.keys.user(user_id, *names), args + list(extra)
        )

    @override
    async def create_session(self, user_id: str, session_id: str | None = None) -> Session:
        check_id(user_id, "user_id")
        session = Session(id=resolve_new_session_id(session_id), user_id=user_id)
        await self._run("create session", "create", user_id, session.id)
        return session

    @override
    async def get_session(self, user_id: str, session_id: str) -> Session:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        raw = await self._run("read session", "get", user_id, session_id)
        messages = []
        for position, value in enumerate(raw):
            try:
                messages.append(Message.model_validate_json(value))
            except ValidationError as exc:
                raise CorruptDataError(
                    f"message {position} of session {session_id!r} of user {user_id!r} "
                    f"cannot be decoded: {exc.errors()[0]['msg']}"
                ) from exc
        return Session(id=session_id, user_id=user_id, messages=messages)

    @override
    async def delete_session(self, user_id: str, session_id: str) -> None:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        await self._run("delete session", "delete", user_id, session_id)

    @override
    async def list_sessions(self, user_id: str) -> list[Session]:
        check_id(user_id, "user_id")
        raw = await self._run("list sessions", "list", user_id, None)
        return [Session(id=decode_id(text(value)), user_id=user_id) for value in raw]

    @override
    async def append_message(
        self,
        session: Session,
        message: Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]],
    ) -> None:
        check_session(session)
        messages = to_messages(message)
        await self._run(
            "append messages",
            "append",
            session.user_id,
            session.id,
            self._max_messages,
            *(item.model_dump_json() for item in messages),
        )
        session.messages.extend(messages)
