"""What the Redis backends share: connections, key layout, Lua scripts and error mapping.

Key layout. Every key is ``<key_prefix>:{<user>}:<kind>...`` where ``<user>`` is the
user id encoded as unpadded base64url of its UTF-8 bytes. The encoding is injective and
uses only ``A-Z a-z 0-9 - _``, so no id (glob characters, ``:``, braces, 10 KB of
unicode) can name another user's key, and the braces around it are the Redis Cluster
hash tag: all keys of one user live in one slot, which makes every multi-key script and
transaction legal on a cluster. Session ids inside keys and index entries are encoded
the same way. Nothing ever lists keys with SCAN or KEYS: each service keeps per-user
index structures.

Connections. A service built from a URL owns its client: ``start()`` creates it (single
node: a ``BlockingConnectionPool``, so callers beyond ``max_connections`` wait for a free
connection instead of failing) and ``stop()`` closes it. A client passed as
``redis_client`` is borrowed: it is used as is and never closed. Every service also caps
its own concurrent commands at ``max_connections``, which keeps a Redis Cluster client
(whose per-node pools raise when exhausted) queueing as well.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from agentmem.errors import (
    BackendError,
    CorruptDataError,
    MissingExtraError,
    ServiceNotStartedError,
)
from agentmem.services.base import ServiceWithLifecycleManager

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import NoScriptError, RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("The Redis backend", "redis", exc.name) from exc

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "LUA_HELPERS",
    "RedisClient",
    "RedisKeys",
    "RedisServiceBase",
    "check_positive",
    "decode_id",
    "encode_id",
    "text",
]

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

DEFAULT_KEY_PREFIX = "agentmem"

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# Lua helpers prepended to every script. ``call_chunked`` splits a command over long
# argument lists, because Lua's ``unpack`` fails beyond a few thousand values.
# ``expire_keys`` gives every key of the script the same deadline, so no key of a user or
# session (data or index) outlives another.
LUA_HELPERS = """
local function call_chunked(command, key, values)
  local result = {}
  for first = 1, #values, 1000 do
    local last = math.min(first + 999, #values)
    local part = redis.call(command, key, unpack(values, first, last))
    if type(part) == 'table' then
      for _, value in ipairs(part) do result[#result + 1] = value end
    end
  end
  return result
end

local function expire_keys(ttl_ms)
  if ttl_ms > 0 then
    for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl_ms) end
  end
end

local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
"""


def encode_id(value: str) -> str:
    """The key-safe form of an id: unpadded base64url of its UTF-8 bytes."""
    raw = value.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_id(encoded: str) -> str:
    """The id that :func:`encode_id` turned into ``encoded``."""
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return base64.urlsafe_b64decode(padded).decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"stored id {encoded!r} is not an encoded id") from exc


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


class RedisKeys:
    """Builds the keys of one service: ``<prefix>:{<encoded user>}:<parts...>``."""

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix.strip():
            raise ValueError(f"key_prefix must be a non-empty string, got {prefix!r}")
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"key_prefix must not contain braces, got {prefix!r}")
        self.prefix = prefix

    def user(self, user_id: str, *names: str) -> list[str]:
        """The keys ``names`` (such as ``"mem:docs"``) of ``user_id``, in its cluster slot."""
        start = f"{self.prefix}:{{{encode_id(user_id)}}}:"
        return [start + name for name in names]


def check_positive(value: object, name: str, *, optional: bool) -> int | None:
    """Return ``value`` if it is an int >= 1 (or None when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int{' or None' if optional else ''}, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _split_cluster_url(url: str, cluster: bool | None) -> tuple[str, bool]:
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _CLUSTER_SCHEMES:
        return f"{_CLUSTER_SCHEMES[scheme.lower()]}://{rest}", True
    return url, bool(cluster)


class RedisServiceBase(ServiceWithLifecycleManager):
    """Lifecycle, connection and error handling of the Redis services.

    Subclasses call :meth:`redis` around every Redis exchange::

        async with self.redis("add memory") as client:
            ...

    which raises :class:`ServiceNotStartedError` before ``start()``, waits for one of
    ``max_connections`` slots, and turns redis-py errors into :class:`BackendError`
    (``WRONGTYPE`` replies, i.e. a key holding something agentmem did not write, into
    :class:`CorruptDataError`).
    """

    #: Lua sources of the subclass's scripts by name; loaded into Redis on first use.
    scripts: Mapping[str, str] = {}

    def __init__(
        self,
        redis_url: str,
        redis_client: RedisClient | None,
        *,
        socket_timeout: float | None,
        socket_connect_timeout: float | None,
        max_connections: int | None,
        retry_on_timeout: bool,
        ttl_seconds: int | None,
        health_check_interval: float | None,
        socket_keepalive: bool,
        key_prefix: str,
        cluster: bool | None,
    ) -> None:
        if not isinstance(redis_url, str):
            raise TypeError(f"redis_url must be a str, got {type(redis_url).__name__}")
        if redis_client is not None and not isinstance(redis_client, aioredis.Redis | RedisCluster):
            raise TypeError(
                "redis_client must be a redis.asyncio.Redis or RedisCluster, "
                f"got {type(redis_client).__name__}"
            )
        self._redis_url, self._cluster = _split_cluster_url(redis_url, cluster)
        self._borrowed = redis_client
        self._socket_timeout = socket_timeout
        self._socket_connect_timeout = socket_connect_timeout
        self._max_connections = (
            check_positive(max_connections, "max_connections", optional=True) or 50
        )
        self._retry_on_timeout = retry_on_timeout
        ttl = check_positive(ttl_seconds, "ttl_seconds", optional=True)
        self._ttl_ms = 0 if ttl is None else ttl * 1000
        self._health_check_interval = health_check_interval or 0
        self._socket_keepalive = socket_keepalive
        self.keys = RedisKeys(key_prefix)
        self._client: RedisClient | None = None
        self._script_shas = {
            name: hashlib.sha1(source.encode("utf-8")).hexdigest()
            for name, source in self.scripts.items()
        }
        self._cluster_ready = False
        self._new_synchronisation()

    def _new_synchronisation(self) -> None:
        self._slots = asyncio.Semaphore(self._max_connections)
        self._script_loading = asyncio.Lock()
        self._cluster_initializing = asyncio.Lock()

    @property
    def ttl_seconds(self) -> int | None:
        """Seconds of inactivity after which a user's (or session's) data expires."""
        return self._ttl_ms // 1000 or None

    def _build_client(self) -> RedisClient:
        options: dict[str, Any] = {
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._socket_connect_timeout,
            "socket_keepalive": self._socket_keepalive,
            "health_check_interval": self._health_check_interval,
        }
        if self._cluster:
            return RedisCluster.from_url(
                self._redis_url, max_connections=self._max_connections, **options
            )
        pool = aioredis.BlockingConnectionPool.from_url(
            self._redis_url,
            max_connections=self._max_connections,
            timeout=None,
            retry_on_timeout=self._retry_on_timeout,
            **options,
        )
        return aioredis.Redis.from_pool(pool)

    async def start(self) -> None:
        """Create the client, or take the borrowed one.

        Does not contact Redis: a service starts while Redis is down and serves as soon
        as it is up.
        """
        if self._client is None:
            # Fresh synchronisation objects, so a service stopped in one event loop can be
            # started in another.
            self._new_synchronisation()
            self._client = self._borrowed if self._borrowed is not None else self._build_client()

    async def stop(self) -> None:
        """Close the client if the service created it; a borrowed client stays open."""
        client, self._client = self._client, None
        self._cluster_ready = False
        if client is not None and client is not self._borrowed:
            await client.aclose()

    async def health(self) -> bool:
        """Whether Redis answers a PING now (False before ``start()``). Never raises."""
        client = self._client
        if client is None:
            return False
        try:
            timeout = self._socket_timeout or 5.0
            return bool(await asyncio.wait_for(client.ping(), timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    @asynccontextmanager
    async def redis(self, action: str) -> AsyncIterator[RedisClient]:
        """The client, for one exchange with Redis; see the class docstring."""
        client = self._client
        if client is None:
            raise ServiceNotStartedError(self)
        async with self._slots:
            try:
                if isinstance(client, RedisCluster) and not self._cluster_ready:
                    await self._initialize_cluster(client)
                yield client
            except ResponseError as exc:
                if str(exc).startswith("WRONGTYPE"):
                    raise CorruptDataError(
                        f"cannot {action}: a key holds data of the wrong type ({exc})"
                    ) from exc
                raise BackendError(f"Redis failed to {action}: {exc}") from exc
            except RedisError as exc:
                raise BackendError(f"Redis failed to {action}: {exc}") from exc

    async def _initialize_cluster(self, client: RedisCluster) -> None:
        # redis-py's cluster client discovers the nodes on first use; when many commands
        # are the first at once, that discovery races with them and can resend commands
        # that already ran. One caller discovers; the others wait for it.
        async with self._cluster_initializing:
            if not self._cluster_ready:
                await client.initialize()
                self._cluster_ready = True

    async def run_script(
        self, action: str, name: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run the script ``name`` of :attr:`scripts` atomically on ``keys`` (one slot).

        Scripts are called by SHA; when Redis does not know them (first use, or a server
        restarted empty) one caller loads them all while the others wait. A script that
        Redis did not know did not run, so running it again is safe.
        """
        sha = self._script_shas[name]
        async with self.redis(action) as client:
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                async with self._script_loading:
                    try:
                        return await client.evalsha(sha, len(keys), *keys, *args)
                    except NoScriptError:
                        for source in self.scripts.values():
                            await client.script_load(source)
                return await client.evalsha(sha, len(keys), *keys, *args)
