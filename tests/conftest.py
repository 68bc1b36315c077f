"""Fixtures shared by the whole suite: one parametrized fixture per service kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentmem import MemoryService, SessionHistoryService, StateService
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS, STATE_BACKENDS
from tests.redis_backends import redis_cluster_url, redis_url  # noqa: F401


@pytest.fixture(params=sorted(MEMORY_BACKENDS))
async def memory_service(request: pytest.FixtureRequest) -> AsyncIterator[MemoryService]:
    service = await MEMORY_BACKENDS[request.param](request)
    async with service:
        yield service


@pytest.fixture(params=sorted(SESSION_HISTORY_BACKENDS))
async def session_service(
    request: pytest.FixtureRequest,
) -> AsyncIterator[SessionHistoryService]:
    service = await SESSION_HISTORY_BACKENDS[request.param](request)
    async with service:
        yield service


@pytest.fixture(params=sorted(STATE_BACKENDS))
async def state_service(request: pytest.FixtureRequest) -> AsyncIterator[StateService]:
    service = await STATE_BACKENDS[request.param](request)
    async with service:
        yield service
