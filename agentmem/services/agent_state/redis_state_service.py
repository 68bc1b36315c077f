"""Agent state in Redis: one hash of rounds per user and session, rounds taken atomically."""

from __future__ import annotations

import json
from typing import Any

from typing_extensions import Unpack, override

from agentmem.errors import CorruptDataError
from agentmem.limits import MAX_ROUND_ID
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
from agentmem.services.agent_state.state_service import StateService, next_round

__all__ = ["RedisStateService"]

# KEYS of the session scripts: the session's round ids (a sorted set, for the latest round
# in O(log n)), its states by round (a hash) and the user's index of sessions holding
# rounds (a sorted set scored by each session's deadline in ms, +inf without expiry).
# ARGV: the TTL in ms (0: none), the encoded session, the round id ("0": the next one for
# saves, the latest one for reads and all of them for deletes), then the script's own.
# Round ids go to Redis as the decimal strings they are stored as: Lua turns numbers into
# text with 14 significant digits, which would round ids beyond 10^14.
_SESSION_PRELUDE = (
    LUA_HELPERS
    + f"""
local rounds, states, sessions = KEYS[1], KEYS[2], KEYS[3]
local ttl_ms, session, round = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local MAX_ROUND = {MAX_ROUND_ID}

local function latest()
  return redis.call('ZRANGE', rounds, -1, -1)[1]
end

-- Lists the session in the user's index until its deadline, which its keys share.
local function touch()
  if ttl_ms > 0 then
    redis.call('ZADD', sessions, now_ms() + ttl_ms, session)
    expire_keys(ttl_ms)
  else
    redis.call('ZADD', sessions, 'inf', session)
    redis.call('PERSIST', sessions)
  end
end
"""
)

_SCRIPTS = {
    # ARGV 4: the state's JSON. Returns the round, or nothing when the latest round is
    # MAX_ROUND and no round was given.
    "save": _SESSION_PRELUDE
    + """
if round == '0' then
  local top = latest()
  local chosen = (top and tonumber(top) or 0) + 1
  if chosen > MAX_ROUND then return false end
  round = string.format('%d', chosen)
end
redis.call('HSET', states, round, ARGV[4])
redis.call('ZADD', rounds, round, round)
touch()
return round
""",
    "load": _SESSION_PRELUDE
    + """
if round == '0' then
  round = latest()
  if not round then return false end
end
local state = redis.call('HGET', states, round)
if state and ttl_ms > 0 then touch() end
return state
""",
    "rounds": _SESSION_PRELUDE
    + """
local all = redis.call('ZRANGE', rounds, 0, -1)
if #all > 0 and ttl_ms > 0 then touch() end
return all
""",
    "delete": _SESSION_PRELUDE
    + """
if round == '0' then
  redis.call('DEL', rounds, states)
else
  redis.call('ZREM', rounds, round)
  redis.call('HDEL', states, round)
end
if redis.call('EXISTS', rounds) == 0 then redis.call('ZREM', sessions, session) end
return 1
""",
    # KEYS: the user's index of sessions. The sessions holding rounds now; drops the
    # entries of expired ones.
    "sessions": LUA_HELPERS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now_ms()))
return redis.call('ZRANGE', KEYS[1], 0, -1)
""",
}

_INDEX = "state:sessions"


class RedisStateService(RedisServiceBase, StateService):
    """States in Redis, a hash of JSON states by round per user and session.

    Connection: ``connection=RedisConnection(...)`` or AgentScope Runtime 1.0's
    arguments, positional (``redis_url, redis_client, socket_timeout,
    socket_connect_timeout, max_connections, retry_on_timeout, ttl_seconds,
    health_check_interval, socket_keepalive``) or by keyword, as for
    :class:`agentmem.services.memory.redis.RedisMemoryService`.

    Choosing the next round and storing the state is one Lua script, so concurrent
    saves from any number of processes get distinct rounds (AgentScope Runtime 1.0 read
    ``max + 1`` and wrote it in two steps, so concurrent saves collided). Round ids are
    exact up to 2**53 - 1, where automatic rounds stop as in every backend. The user's
    sessions are listed from an index kept by the same scripts, never by scanning keys.

    ``ttl_seconds`` (default None: never expire) applies per user and session: when set,
    the session's rounds expire together, ``ttl_seconds`` after its last save or read.
    AgentScope Runtime 1.0 defaulted to 3600; pass ``ttl_seconds=3600`` to keep that. A
    stored state that is not a JSON object makes ``export_state`` raise
    :class:`agentmem.errors.CorruptDataError`.
    """

    scripts = _SCRIPTS
    agentscope_parameters = tuple(
        name for name in AGENTSCOPE_PARAMETERS if name != "max_messages_per_session"
    )

    def __init__(
        self,
        *args: Any,
        connection: RedisConnection | None = None,
        ttl_seconds: int | None = None,
        **options: Unpack[RedisOptions],
    ) -> None:
        super().__init__(args, connection, options, ttl_seconds=ttl_seconds)

    def _session_keys(self, user_id: str, session_id: str) -> list[str]:
        session = encode_id(session_id)
        return self.keys.user(user_id, f"state:rounds:{session}", f"state:states:{session}", _INDEX)

    async def _run(
        self, script: str, user_id: str, session_id: str, round_id: int | None, *extra: Any
    ) -> Any:
        keys = self._session_keys(user_id, session_id)
        round_arg = "0" if round_id is None else str(round_id)
        args = [self.ttl_ms, encode_id(session_id), round_arg, *extra]
        return await self.run_script(script, keys, args)

    @override
    async def _save_state(
        self, user_id: str, session_id: str, state: dict[str, Any], round_id: int | None
    ) -> int:
        encoded = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        saved = await self._run("save", user_id, session_id, round_id, encoded)
        if saved is None:
            # The latest round is the last one: next_round says so as every backend does.
            return next_round(MAX_ROUND_ID)
        return int(text(saved))

    @override
    async def _load_state(
        self, user_id: str, session_id: str, round_id: int | None
    ) -> dict[str, Any] | None:
        raw = await self._run("load", user_id, session_id, round_id)
        if raw is None:
            return None
        where = f"session {session_id!r} of user {user_id!r}"
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise CorruptDataError(f"a state stored in {where} is not JSON") from exc
        if not isinstance(state, dict):
            raise CorruptDataError(f"a state stored in {where} is not a JSON object")
        return state

    @override
    async def _list_rounds(self, user_id: str, session_id: str) -> list[int]:
        raw = await self._run("rounds", user_id, session_id, None)
        try:
            return [int(text(value)) for value in raw]
        except ValueError as exc:
            raise CorruptDataError(
                f"session {session_id!r} of user {user_id!r} holds a round id that is not a number"
            ) from exc

    @override
    async def _delete_state(self, user_id: str, session_id: str, round_id: int | None) -> None:
        await self._run("delete", user_id, session_id, round_id)

    @override
    async def _list_state_sessions(self, user_id: str) -> list[str]:
        raw = await self.run_script("sessions", self.keys.user(user_id, _INDEX), [])
        return [decode_id(text(value)) for value in raw]
