"""What the Redis backends share: the connection setting, key layout, scripts and lifecycle.

Key layout. Every key is ``<key_prefix>:{<user>}:<kind>...`` where ``<user>`` is the
user id encoded as unpadded base64url of its UTF-8 bytes. The encoding is injective and
uses only ``A-Z a-z 0-9 - _``, so no id (glob characters, ``:``, braces, 10 KB of
unicode) can name another user's key, and the braces around it are the Redis Cluster
hash tag: all keys of one user live in one slot, which makes every multi-key script and
transaction legal on a cluster. Session ids inside keys and index entries are encoded
the same way. The services keep per-user index structures and never list keys, except
the admin operation ``clear_all_memory``.

Connections. :class:`RedisConnection` says how to reach Redis; one object can be given
to any number of services. A service built from a URL owns its client: ``start()``
creates it (single node: a ``BlockingConnectionPool``, so callers beyond
``max_connections`` wait for a free connection instead of failing) and ``stop()`` closes
it. A client given in the setting is borrowed: it is used as is and never closed, and
services given the same client share its pool. Every service also caps its own
concurrent commands at ``max_connections``, which keeps a Redis Cluster client (whose
per-node pools raise when exhausted) queueing as well.

Expiry. Every service takes ``ttl_seconds``, default None: data never expires. When set,
data expires ``ttl_seconds`` after its last write or read, per user for memory and per
session for session history and state, all keys of that unit together.

Retries. A command that times out may still run: Redis executes what it has received,
even from a connection the client has given up on. So redis-py's re-sends (``retries``
of :class:`RedisConnection`) and a caller's retry of a call that raised must be
harmless, and they are: every write script is idempotent (the memory and session
scripts store a message id once per session, a state save remembers its round by a
write token), and a write that raised has been applied completely or not at all. The
rule for callers: a write that raised may have been applied; retrying it is safe (with
the same messages: a :class:`~agentmem.Message` has its id from creation, a dict without
an ``"id"`` gets a new one on every call).

Bounded work. Redis runs one script at a time, and every other client waits meanwhile.
A script copies each argument and each reply into Lua, at a cost that grows with their
size (``benchmarks/redis_bench.py`` times the largest writes), so bulky values go to
Redis as plain commands inside a MULTI transaction next to a small script
(:meth:`RedisServiceBase.transaction`), and work that grows with the data written (the
index terms of a large memory) is done in steps of bounded size.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, TypedDict
from urllib.parse import urlsplit, urlunsplit

from agentmem.errors import (
    AgentMemError,
    CorruptDataError,
    InvalidArgumentError,
    MissingExtraError,
    ServiceNotStartedError,
)
from agentmem.services.base import ServiceWithLifecycleManager

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("The Redis backend", "redis", exc.name) from exc

__all__ = [
    "AGENTSCOPE_PARAMETERS",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_URL",
    "LUA_HELPERS",
    "RedisClient",
    "RedisConnection",
    "RedisKeys",
    "RedisOptions",
    "RedisServiceBase",
    "check_positive",
    "decode_id",
    "encode_id",
    "text",
]

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

DEFAULT_KEY_PREFIX = "agentmem"
DEFAULT_URL = "redis://localhost:6379/0"

#: AgentScope Runtime 1.0's positional constructor parameters of its Redis memory and
#: session history services, in order.
AGENTSCOPE_PARAMETERS = (
    "redis_url",
    "redis_client",
    "socket_timeout",
    "socket_connect_timeout",
    "max_connections",
    "retry_on_timeout",
    "ttl_seconds",
    "max_messages_per_session",
    "health_check_interval",
    "socket_keepalive",
)

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Pause before the first re-send of a failed command, doubled for each further one.
_RETRY_BACKOFF_BASE = 0.05
_RETRY_BACKOFF_CAP = 0.5
# Keys asked for per SCAN call, and unlinked per UNLINK, by clear_all.
_SCAN_BATCH = 1000

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

-- Frees big values in a background thread: DEL of a key holding millions of entries
-- would keep Redis busy while it frees them.
local function unlink_keys(keys)
  if #keys > 0 then redis.call('UNLINK', unpack(keys)) end
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


def _glob_escape(value: str) -> str:
    """``value`` as a literal in a Redis MATCH pattern."""
    for special in "\\*?[]":
        value = value.replace(special, "\\" + special)
    return value


class RedisKeys:
    """Builds the keys of one service: ``<prefix>:{<encoded user>}:<parts...>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def user(self, user_id: str, *names: str) -> list[str]:
        """The keys ``names`` (such as ``"mem:docs"``) of ``user_id``, in its cluster slot."""
        start = f"{self.prefix}:{{{encode_id(user_id)}}}:"
        return [start + name for name in names]

    def pattern(self, kind: str) -> str:
        """A MATCH pattern for every user's keys whose name starts with ``kind``."""
        return f"{_glob_escape(self.prefix)}:{{*}}:{_glob_escape(kind)}*"


def check_positive(value: object, name: str, *, optional: bool) -> int | None:
    """Return ``value`` if it is an int >= 1 (or None when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        rule = f"must be an int{' or None' if optional else ''}, got {value!r}"
        raise InvalidArgumentError(name, rule)
    if value < 1:
        raise InvalidArgumentError(name, f"must be >= 1, got {value}")
    return value


class RedisOptions(TypedDict, total=False):
    """AgentScope Runtime 1.0's connection arguments of its Redis services, by keyword."""

    redis_url: str
    redis_client: RedisClient | None
    socket_timeout: float | None
    socket_connect_timeout: float | None
    max_connections: int | None
    retry_on_timeout: bool
    health_check_interval: float | None
    socket_keepalive: bool
    key_prefix: str
    cluster: bool | None
    retries: int


# The RedisConnection field of each RedisOptions key that is named differently.
_OPTION_FIELDS = {"redis_url": "url", "redis_client": "client"}


@dataclass(frozen=True, slots=True, repr=False)
class RedisConnection:
    """How the Redis services reach Redis: one value, shareable by every service.

    - ``url``: ``redis://``, ``rediss://`` or ``unix://``; ``redis+cluster://host:port``
      (or ``cluster=True``) connects as a Redis Cluster client.
    - ``client``: a ``redis.asyncio.Redis`` or ``RedisCluster`` to use instead of
      ``url``. It is borrowed: never closed by a service. Services given the same client
      share its connection pool; services given only a URL each make a pool of their own.
    - ``max_connections`` (default 50): the size of a pool made from ``url``, and the
      number of commands one service sends at once; callers beyond it wait.
    - ``socket_timeout``, ``socket_connect_timeout`` (seconds, default 5),
      ``health_check_interval`` (seconds a connection may idle before it is checked on
      reuse, default 30; 0 or None: never) and ``socket_keepalive``: as for redis-py,
      for clients made from ``url``.
    - ``retries`` (default 1): how many times a client made from ``url`` sends a
      command again after a connection error or, with ``retry_on_timeout`` (default
      True), a timeout, pausing 0.05 s, then twice as long each time (at most 0.5 s).
      On a single Redis, a call that gets no answer therefore raises
      :class:`agentmem.errors.BackendError` after about ``(retries + 1) *
      socket_timeout`` seconds. A Redis Cluster client retries timeouts whatever
      ``retry_on_timeout`` says and looks the cluster's nodes up again between
      attempts, which can take longer. Re-sending is safe: every write is idempotent
      (see :mod:`agentmem.services._redis`).
    - ``key_prefix`` (default ``"agentmem"``): the namespace of every key, so several
      applications (or tests) can share one Redis; no braces.

    Creating it does not connect. Invalid values raise
    :class:`agentmem.errors.InvalidArgumentError`.
    """

    url: str = DEFAULT_URL
    client: RedisClient | None = None
    max_connections: int = 50
    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 5.0
    retry_on_timeout: bool = True
    health_check_interval: float | None = 30.0
    socket_keepalive: bool = True
    cluster: bool | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    retries: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise InvalidArgumentError("url", f"must be a str, got {type(self.url).__name__}")
        if self.client is not None and not isinstance(self.client, aioredis.Redis | RedisCluster):
            raise InvalidArgumentError(
                "client",
                f"must be a redis.asyncio.Redis or RedisCluster, got {type(self.client).__name__}",
            )
        check_positive(self.max_connections, "max_connections", optional=False)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InvalidArgumentError("retries", f"must be an int >= 0, got {self.retries!r}")
        prefix = self.key_prefix
        if not isinstance(prefix, str) or not prefix.strip():
            raise InvalidArgumentError("key_prefix", f"must be a non-empty string, got {prefix!r}")
        if "{" in prefix or "}" in prefix:
            raise InvalidArgumentError("key_prefix", f"must not contain braces, got {prefix!r}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RedisConnection:
        """The setting that AgentScope Runtime 1.0's keyword arguments describe."""
        values: dict[str, Any] = {_OPTION_FIELDS.get(name, name): v for name, v in options.items()}
        # AgentScope Runtime 1.0 takes None for its default pool size.
        if "max_connections" in values and values["max_connections"] is None:
            del values["max_connections"]
        return cls(**values)

    def __repr__(self) -> str:
        # The URL may hold a password: it is left out of logs.
        parts = urlsplit(self.url)
        url = self.url
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
        client = "" if self.client is None else f", client={type(self.client).__name__}"
        return (
            f"RedisConnection(url={url!r}{client}, max_connections={self.max_connections}, "
            f"key_prefix={self.key_prefix!r}, cluster={self.cluster!r}, retries={self.retries})"
        )

    def target(self) -> tuple[str, bool]:
        """The URL for redis-py and whether it names a cluster."""
        scheme, sep, rest = self.url.partition("://")
        if sep and scheme.lower() in _CLUSTER_SCHEMES:
            return f"{_CLUSTER_SCHEMES[scheme.lower()]}://{rest}", True
        return self.url, bool(self.cluster)

    def build_client(self) -> RedisClient:
        """A new client from :attr:`url` (the caller owns and closes it)."""
        url, cluster = self.target()
        errors: tuple[type[RedisError], ...] = (RedisConnectionError,)
        if self.retry_on_timeout:
            errors += (RedisTimeoutError,)
        retry = Retry(
            ExponentialBackoff(cap=_RETRY_BACKOFF_CAP, base=_RETRY_BACKOFF_BASE),
            self.retries,
            supported_errors=errors,
        )
        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_keepalive": self.socket_keepalive,
            "health_check_interval": self.health_check_interval or 0,
            "retry": retry,
        }
        if cluster:
            return RedisCluster.from_url(url, max_connections=self.max_connections, **options)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=self.max_connections, timeout=None, **options
        )
        return aioredis.Redis.from_pool(pool)


class RedisServiceBase(ServiceWithLifecycleManager):
    """Lifecycle, connection and scripts of the Redis services.

    Subclasses reach Redis through :meth:`redis` or :meth:`run_script`, which raise
    :class:`ServiceNotStartedError` before ``start()`` and wait for one of
    ``max_connections`` slots; the service bases map what they raise (``WRONGTYPE``
    replies, i.e. a key holding something agentmem did not write, become
    :class:`CorruptDataError`, other driver errors :class:`BackendError`).
    """

    #: Lua sources of the subclass's scripts by name; loaded into Redis on first use.
    scripts: ClassVar[Mapping[str, str]] = {}
    #: AgentScope Runtime 1.0's positional constructor parameters of the service, in order.
    agentscope_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        args: tuple[Any, ...],
        connection: RedisConnection | None,
        options: RedisOptions,
        **own: Any,
    ) -> None:
        """Take the subclass's constructor arguments: AgentScope Runtime 1.0's positional
        ``args`` and keyword ``options``, or ``connection``, and its own keyword
        arguments ``own`` (``ttl_seconds`` and, where the service trims sessions,
        ``max_messages_per_session``)."""
        self.connection, resolved = self._arguments(args, connection, options, own)
        ttl = check_positive(resolved["ttl_seconds"], "ttl_seconds", optional=True)
        self.ttl_ms = 0 if ttl is None else ttl * 1000
        limit = resolved.get("max_messages_per_session")
        #: The newest memories or messages kept per session; 0: all of them.
        self.max_messages = check_positive(limit, "max_messages_per_session", optional=True) or 0
        self.keys = RedisKeys(self.connection.key_prefix)
        self._client: RedisClient | None = None
        self._script_shas = {
            name: hashlib.sha1(source.encode("utf-8")).hexdigest()
            for name, source in self.scripts.items()
        }
        self._cluster_ready = False
        self._new_synchronisation()

    @classmethod
    def _arguments(
        cls,
        positional: tuple[Any, ...],
        connection: RedisConnection | None,
        options: RedisOptions,
        own: dict[str, Any],
    ) -> tuple[RedisConnection, dict[str, Any]]:
        """The connection and the service's own arguments (``own``, None when not given)
        from AgentScope Runtime 1.0's positional and keyword arguments or ``connection``."""
        name = cls.__name__
        if len(positional) > len(cls.agentscope_parameters):
            raise TypeError(
                f"{name}() takes at most {len(cls.agentscope_parameters)} positional "
                f"arguments ({len(positional)} given)"
            )
        given: dict[str, Any] = dict(options)
        unknown = sorted(given.keys() - RedisOptions.__annotations__.keys())
        if unknown:
            raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
        resolved = dict(own)
        for parameter, value in zip(cls.agentscope_parameters, positional, strict=False):
            target = resolved if parameter in own else given
            if parameter in given or (parameter in own and own[parameter] is not None):
                raise TypeError(f"{name}() got multiple values for argument {parameter!r}")
            target[parameter] = value
        if connection is None:
            return RedisConnection.from_options(given), resolved
        if given:
            raise TypeError(
                f"{name}() takes either connection= or the connection arguments "
                f"({', '.join(sorted(given))}), not both"
            )
        if not isinstance(connection, RedisConnection):
            raise InvalidArgumentError(
                "connection", f"must be a RedisConnection, got {type(connection).__name__}"
            )
        return connection, resolved

    def _new_synchronisation(self) -> None:
        self._slots = asyncio.Semaphore(self.connection.max_connections)
        self._script_loading = asyncio.Lock()
        self._cluster_initializing = asyncio.Lock()

    @property
    def ttl_seconds(self) -> int | None:
        """Seconds after the last write or read at which data expires; None: never."""
        return self.ttl_ms // 1000 or None

    async def start(self) -> None:
        """Create the client, or take the borrowed one.

        Does not contact Redis: a service starts while Redis is down and serves as soon
        as it is up.
        """
        if self._client is None:
            # Fresh synchronisation objects, so a service stopped in one event loop can be
            # started in another.
            self._new_synchronisation()
            borrowed = self.connection.client
            self._client = borrowed if borrowed is not None else self.connection.build_client()

    async def stop(self) -> None:
        """Close the client if the service created it; a borrowed client stays open."""
        client, self._client = self._client, None
        self._cluster_ready = False
        if client is not None and client is not self.connection.client:
            await client.aclose()

    async def _check_health(self) -> bool:
        async with self.redis() as client:
            return bool(await client.ping())

    def _classify_error(self, exc: Exception) -> type[AgentMemError] | None:
        # Newer servers report errors inside scripts as "Error running script ...
        # WRONGTYPE ...", so the code is looked for anywhere in the message.
        if isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc):
            return CorruptDataError
        return None

    @asynccontextmanager
    async def redis(self) -> AsyncIterator[RedisClient]:
        """The client, for one exchange with Redis; see the class docstring."""
        client = self._client
        if client is None:
            raise ServiceNotStartedError(self)
        async with self._slots:
            if isinstance(client, RedisCluster) and not self._cluster_ready:
                await self._initialize_cluster(client)
            yield client

    async def _initialize_cluster(self, client: RedisCluster) -> None:
        # redis-py's cluster client discovers the nodes on first use; when many commands
        # are the first at once, that discovery races with them and can resend commands
        # that already ran. One caller discovers; the others wait for it.
        async with self._cluster_initializing:
            if not self._cluster_ready:
                await client.initialize()
                self._cluster_ready = True

    async def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the script ``name`` of :attr:`scripts` atomically on ``keys`` (one slot).

        Scripts are called by SHA; when Redis does not know them (first use, or a server
        restarted empty) one caller loads them all while the others wait. A script that
        Redis did not know did not run, so running it again is safe.
        """
        sha = self._script_shas[name]
        async with self.redis() as client:
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

    async def transaction(
        self,
        commands: Sequence[Sequence[Any]],
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> list[Any]:
        """Run the plain Redis ``commands``, then the script ``name``, as one MULTI
        transaction; return the replies, the script's last.

        For bulky values, which a script would copy into Lua and back: they travel in the
        plain commands (or their replies) and the script does the rest, atomically with
        them. The script goes by its source (EVAL): inside MULTI, a SHA that Redis does
        not know would fail after the plain commands had run.
        """
        async with self.redis() as client:
            pipe = client.pipeline(transaction=True)
            for command in commands:
                pipe.execute_command(*command)
            pipe.execute_command("EVAL", self.scripts[name], len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute()
        return replies

    async def unlink_matching(self, pattern: str) -> None:
        """UNLINK every key matching ``pattern`` on every master node, in batches.

        SCAN, never KEYS: Redis keeps serving other clients meanwhile. Not atomic: keys
        written while it runs may stay.
        """
        async with self.redis() as client:
            nodes: list[Any] = (
                client.get_primaries() if isinstance(client, RedisCluster) else [None]
            )
            for node in nodes:
                cursor, batch = 0, []
                while True:
                    if node is None:
                        cursor, found = await client.scan(cursor, match=pattern, count=_SCAN_BATCH)
                    else:
                        # A cluster client answers with the cursor of each node asked.
                        reply: Any = await client.scan(
                            cursor, match=pattern, count=_SCAN_BATCH, target_nodes=node
                        )
                        cursor, found = reply[0][node.name], reply[1]
                    batch += found
                    if len(batch) >= _SCAN_BATCH or (cursor == 0 and batch):
                        await client.unlink(*batch)
                        batch = []
                    if cursor == 0:
                        break
