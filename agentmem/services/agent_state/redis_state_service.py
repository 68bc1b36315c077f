"""Agent state in Redis: one hash of rounds per user and session, rounds taken atomically."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import OrderedDict
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
from agentmem.services.agent_state.state_service import StateService, decode_state, next_round

__all__ = ["RedisStateService"]

# How long a save's write token is kept: a retry within this time, by redis-py or by
# the caller (see RedisStateService._unsettled), returns the round of the first attempt.
_TOKEN_SECONDS = 3600
# Saves without a round id that raised, remembered per service until retried.
_UNSETTLED = 1024
# Reads of a large state whose round is saved again meanwhile, before giving up.
_ATTEMPTS = 3
# A state of more JSON bytes than this goes to Redis as a plain HSET, beside the "save"
# script rather than through it: Lua would copy it in and out.
_LUA_BYTES = 256 * 1024

# KEYS of the session scripts: the session's round ids (a sorted set, for the latest round
# in O(log n)), its states by round (a hash), the user's index of sessions holding rounds
# (a sorted set scored by each session's deadline in ms, +inf without expiry) and the
# write tokens of the session's recent saves without a round id (a sorted set of
# "<token>:<round>", all scores 0, so a token is found by lexical range; a token starts
# with its creation time in ms, 13 digits, so the old ones are one range too). A round's
# value in the states hash is the state's JSON, or "@<field>" for a large state, whose
# JSON is in the field "~<token>" of the same hash.
# ARGV: the TTL in ms (0: none), the encoded session, the round id ("0": the next one for
# saves, the latest one for reads and all of them for deletes), then the script's own.
# Round ids go to Redis as the decimal strings they are stored as: Lua turns numbers into
# text with 14 significant digits, which would round ids beyond 10^14.
_SESSION_PRELUDE = (
    LUA_HELPERS
    + f"""
local rounds, states, sessions, tokens = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl_ms, session, round = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local MAX_ROUND = {MAX_ROUND_ID}
local TOKEN_MS = {_TOKEN_SECONDS * 1000}

local function latest()
  return redis.call('ZRANGE', rounds, -1, -1)[1]
end

-- The field holding the JSON of a round saved as a large state, nil for other rounds.
-- Only short values are read: a reference is short and a state may be long.
local function body_of(key)
  if redis.call('HSTRLEN', states, key) > 64 then return nil end
  local value = redis.call('HGET', states, key)
  if value and string.sub(value, 1, 1) == '@' then return string.sub(value, 2) end
  return nil
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
    # ARGV 4: the state's JSON, or "@<field>" when the transaction running this script
    # has just written it to that field; 5: the save's write token. Returns the round,
    # or nothing when the latest round is MAX_ROUND and no round was given. A save
    # without a round id whose token is known was applied before: it returns that round.
    "save": _SESSION_PRELUDE
    + """
local value = ARGV[4]
local body = string.sub(value, 1, 1) == '@' and string.sub(value, 2) or nil
if round == '0' then
  local token = ARGV[5]
  local done = redis.call('ZRANGEBYLEX', tokens, '[' .. token .. ':', '(' .. token .. ';',
    'LIMIT', 0, 1)[1]
  if done then
    done = string.sub(done, #token + 2)
    -- The transaction wrote the body again; it stays only if the round still uses it.
    if body and body_of(done) ~= body then redis.call('HDEL', states, body) end
    return done
  end
  local top = latest()
  local chosen = (top and tonumber(top) or 0) + 1
  if chosen > MAX_ROUND then
    if body then redis.call('HDEL', states, body) end
    return false
  end
  round = string.format('%d', chosen)
  redis.call('ZREMRANGEBYLEX', tokens, '-', '(' .. string.format('%013d', now_ms() - TOKEN_MS))
  redis.call('ZADD', tokens, 0, token .. ':' .. round)
end
local replaced = body_of(round)
if replaced and replaced ~= body then redis.call('HDEL', states, replaced) end
redis.call('HSET', states, round, value)
redis.call('ZADD', rounds, round, round)
touch()
return round
""",
    # Returns the round's value (see "save"), nothing for none.
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
  unlink_keys({rounds, states})
else
  local body = body_of(round)
  if body then redis.call('HDEL', states, body) end
  redis.call('ZREM', rounds, round)
  redis.call('HDEL', states, round)
end
if redis.call('EXISTS', rounds) == 0 then
  redis.call('ZREM', sessions, session)
  unlink_keys({tokens})
end
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

    Saving is idempotent: a save without a round id carries a write token, kept with
    its round for an hour, so a re-sent save (by redis-py after a timeout) returns the
    round of the first attempt instead of taking another. A save that raised is
    remembered by the service, and the caller's retry with the same user, session and
    state reuses its token: it too returns the round of the first attempt if that one
    was applied. A save with a round id writes that round, however often it runs.

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
        # The write tokens of saves without a round id that raised, by user, session and
        # state digest, oldest first: their outcome is unknown, so a retry must reuse
        # the token to find the round if the save was applied.
        self._unsettled: OrderedDict[tuple[str, str, bytes], str] = OrderedDict()

    def _session_keys(self, user_id: str, session_id: str) -> list[str]:
        session = encode_id(session_id)
        return self.keys.user(
            user_id,
            f"state:rounds:{session}",
            f"state:states:{session}",
            _INDEX,
            f"state:tokens:{session}",
        )

    def _args(self, session_id: str, round_id: int | None, *extra: Any) -> list[Any]:
        """Every session script's ARGV: the TTL, the encoded session, the round and ``extra``."""
        round_arg = "0" if round_id is None else str(round_id)
        return [self.ttl_ms, encode_id(session_id), round_arg, *extra]

    async def _run(
        self, script: str, user_id: str, session_id: str, round_id: int | None, *extra: Any
    ) -> Any:
        keys = self._session_keys(user_id, session_id)
        return await self.run_script(script, keys, self._args(session_id, round_id, *extra))

    @override
    async def _save_state(
        self, user_id: str, session_id: str, state: dict[str, Any], round_id: int | None
    ) -> int:
        encoded = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        if round_id is not None:
            saved = await self._save(user_id, session_id, round_id, encoded, _new_token())
        else:
            attempt = (user_id, session_id, hashlib.sha256(encoded.encode()).digest())
            token = self._unsettled.pop(attempt, None) or _new_token()
            try:
                saved = await self._save(user_id, session_id, None, encoded, token)
            except BaseException:
                self._unsettled[attempt] = token
                if len(self._unsettled) > _UNSETTLED:
                    self._unsettled.popitem(last=False)
                raise
        if saved is None:
            # The latest round is the last one: next_round says so as every backend does.
            return next_round(MAX_ROUND_ID)
        return int(text(saved))

    async def _save(
        self, user_id: str, session_id: str, round_id: int | None, encoded: str, token: str
    ) -> Any:
        """Run "save", a large state beside it as a plain HSET (see _LUA_BYTES)."""
        if len(encoded) <= _LUA_BYTES:
            return await self._run("save", user_id, session_id, round_id, encoded, token)
        keys = self._session_keys(user_id, session_id)
        body = f"~{token}"
        args = self._args(session_id, round_id, f"@{body}", token)
        return (await self.transaction([("HSET", keys[1], body, encoded)], "save", keys, args))[-1]

    @override
    async def _load_state(
        self, user_id: str, session_id: str, round_id: int | None
    ) -> dict[str, Any] | None:
        where = f"session {session_id!r} of user {user_id!r}"
        # A large state is read by a plain HGET rather than through Lua; should the round
        # be saved again meanwhile, its old JSON is gone and the round is read again.
        for _ in range(_ATTEMPTS):
            raw = await self._run("load", user_id, session_id, round_id)
            if raw is None or text(raw[:1]) != "@":
                break
            async with self.redis() as client:
                body = await client.hget(self._session_keys(user_id, session_id)[1], raw[1:])
            if body is not None:
                raw = body
                break
        else:
            raise CorruptDataError(f"a large state stored in {where} has no JSON")
        if raw is None:
            return None
        return decode_state(raw, f"a state stored in {where}")

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


def _new_token() -> str:
    """A write token: the time in ms (13 digits, so tokens sort by age), then a uuid."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex}"
