"""Fixtures of the Redis-specific tests: services on a private key prefix, on both setups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from agentmem import RedisMemoryService, RedisSessionHistoryService, RedisStateService
from agentmem.services._redis import RedisServiceBase
from tests.redis_backends import drop_keys, unique_prefix

S = TypeVar("S", bound=RedisServiceBase)


def raw_client(url: str) -> Any:
    """A redis-py client for looking at the keys directly."""
    if url.startswith("redis+cluster://"):
        return aioredis.RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
    return aioredis.Redis.from_url(url)


class Services:
    """Makes started Redis services sharing one test's key prefix; stops them at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.raw = raw_client(url)
        self._started: list[RedisServiceBase] = []

    async def _start(self, service_class: Callable[..., S], options: dict[str, Any]) -> S:
        options.setdefault("key_prefix", self.prefix)
        service = service_class(self.url, **options)
        await service.start()
        self._started.append(service)
        return service

    async def memory(self, **options: Any) -> RedisMemoryService:
        return await self._start(RedisMemoryService, options)

    async def sessions(self, **options: Any) -> RedisSessionHistoryService:
        return await self._start(RedisSessionHistoryService, options)

    async def states(self, **options: Any) -> RedisStateService:
        return await self._start(RedisStateService, options)

    async def keys(self) -> list[str]:
        """Every key under this test's prefix, decoded."""
        found = [key async for key in self.raw.scan_iter(match=f"{self.prefix}:*", count=1000)]
        return sorted(key.decode() for key in found)

    async def close(self) -> None:
        for service in self._started:
            await service.stop()
        await self.raw.aclose()
        drop_keys(self.url, self.prefix)


@pytest.fixture(params=["redis", "redis_cluster"])
async def services(request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """Services on the single Redis and on the Redis Cluster."""
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    made = Services(url)
    yield made
    await made.close()


@pytest.fixture
async def single(redis_url: str) -> AsyncIterator[Services]:
    """Services on the single Redis only."""
    made = Services(redis_url)
    yield made
    await made.close()
