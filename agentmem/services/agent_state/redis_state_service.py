"""Agent state in Redis: one hash of rounds per user and session, rounds taken atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from typing_extensions import override

from agentmem._validation import DEFAULT_SESSION_ID, check_id, check_optional_id, copy_state
from agentmem.errors import CorruptDataError
from agentmem.services._redis import (
    DEFAULT_KEY_PREFIX,
    LUA_HELPERS,
    RedisClient,
    RedisServiceBase,
    encode_id,
    text,
)
from agentmem.services.agent_state.state_service import StateService, check_round_id

__all__ = ["RedisStateService"]

# KEYS: the session's round ids (a sorted set, for the latest round in O(log n)) and its
# states by round (a hash). ARGV[1] is the TTL in ms (0: none), ARGV[2] the round id
# ("0": the next one for saves, the latest one for reads and all of them for deletes).
_PRELUDE = (
    LUA_HELPERS
    + """
local rounds, states = KEYS[1], KEYS[2]
local ttl_ms, round = tonumber(ARGV[1]), ARGV[2]

local function latest()
  local top = redis.call('ZRANGE', rounds, -1, -1)
  return top[1]
end
"""
)

_SCRIPTS = {
    "save": _PRELUDE
    + """
if round == '0' then
  local top = latest()
  round = string.format('%d', (top and tonumber(top) or 0) + 1)
end
redis.call('HSET', states, round, ARGV[3])
redis.call('ZADD', rounds, tonumber(round), round)
expire_keys(ttl_ms)
return round
""",
    "export": _PRELUDE
    + """
if round == '0' then
  round = latest()
  if not round then return false end
end
local state = redis.call('HGET', states, round)
if state then expire_keys(ttl_ms) end
return state
""",
    "list": _PRELUDE
    + """
local all = redis.call('ZRANGE', rounds, 0, -1)
if #all > 0 then expire_keys(ttl_ms) end
return all
""",
    "delete": _PRELUDE
    + """
if round == '0' then
  redis.call('DEL', rounds, states)
else
  redis.call('ZREM', rounds, round)
  redis.call('HDEL', states, round)
end
return 1
""",
}


class RedisStateService(RedisServiceBase, StateService):
    """States in Redis, a hash of JSON states by round per user and session.

    Choosing the next round and storing the state is one Lua script, so concurrent
    saves from any number of processes get distinct rounds (AgentScope Runtime 1.0 read
    ``max + 1`` and wrote it in two steps, so concurrent saves collided).

    ``ttl_seconds`` (default 3600, None: never) applies per user and session: its rounds
    expire together, ``ttl_seconds`` after the last save or read. Connection arguments,
    ``key_prefix`` and ``cluster`` are those of
    :class:`agentmem.services.memory.redis_memory_service.RedisMemoryService`. A stored
    state that is not valid JSON makes ``export_state`` raise
    :class:`agentmem.errors.CorruptDataError`.
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

    def _keys(self, user_id: str, session_id: str | None) -> list[str]:
        check_id(user_id, "user_id")
        session = encode_id(check_optional_id(session_id, "session_id") or DEFAULT_SESSION_ID)
        return self.keys.user(user_id, f"state:rounds:{session}", f"state:states:{session}")

    @override
    async def save_state(
        self,
        user_id: str,
        state: Mapping[str, Any],
        session_id: str | None = None,
        round_id: int | None = None,
    ) -> int:
        keys = self._keys(user_id, session_id)
        explicit = check_round_id(round_id)
        encoded = json.dumps(copy_state(state), ensure_ascii=False)
        saved = await self.run_script(
            "save state", "save", keys, [self._ttl_ms, explicit or 0, encoded]
        )
        return int(text(saved))

    @override
    async def export_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> dict[str, Any] | None:
        keys = self._keys(user_id, session_id)
        wanted = check_round_id(round_id)
        raw = await self.run_script("read state", "export", keys, [self._ttl_ms, wanted or 0])
        if raw is None:
            return None
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise CorruptDataError(f"the state stored in {keys[1]!r} is not JSON") from exc
        if not isinstance(state, dict):
            raise CorruptDataError(f"the state stored in {keys[1]!r} is not a JSON object")
        return state

    @override
    async def list_states(self, user_id: str, session_id: str | None = None) -> list[int]:
        keys = self._keys(user_id, session_id)
        raw = await self.run_script("list states", "list", keys, [self._ttl_ms, 0])
        try:
            return [int(text(value)) for value in raw]
        except ValueError as exc:
            raise CorruptDataError(f"{keys[0]!r} holds a round id that is not a number") from exc

    @override
    async def delete_state(
        self, user_id: str, session_id: str | None = None, round_id: int | None = None
    ) -> None:
        keys = self._keys(user_id, session_id)
        wanted = check_round_id(round_id)
        await self.run_script("delete state", "delete", keys, [self._ttl_ms, wanted or 0])
