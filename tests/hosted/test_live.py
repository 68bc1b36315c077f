"""The only checks against the real clouds; each runs only when its credentials are set.

- Tablestore: ``TABLESTORE_ENDPOINT``, ``TABLESTORE_INSTANCE_NAME``,
  ``TABLESTORE_ACCESS_KEY_ID``, ``TABLESTORE_ACCESS_KEY_SECRET`` (tables named
  ``agentmem_live_*`` are created in the instance and kept).
- mem0: ``MEM0_API_KEY``.
- ReMe: ``FLOW_LLM_API_KEY``, ``FLOW_LLM_BASE_URL``, ``FLOW_EMBEDDING_API_KEY``,
  ``FLOW_EMBEDDING_BASE_URL`` and ``AGENTMEM_LIVE_REME=1`` (these models are billed).

Each test works on a fresh user id and deletes what it wrote. Hosted indexes follow
writes after a delay, so reads are retried for up to a minute.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from tests.helpers import text_message, texts

pytestmark = pytest.mark.live

T = TypeVar("T")

TABLESTORE_VARIABLES = (
    "TABLESTORE_ENDPOINT",
    "TABLESTORE_INSTANCE_NAME",
    "TABLESTORE_ACCESS_KEY_ID",
    "TABLESTORE_ACCESS_KEY_SECRET",
)
FLOW_VARIABLES = (
    "FLOW_LLM_API_KEY",
    "FLOW_LLM_BASE_URL",
    "FLOW_EMBEDDING_API_KEY",
    "FLOW_EMBEDDING_BASE_URL",
)


def _missing(names: tuple[str, ...]) -> bool:
    return not all(os.environ.get(name) for name in names)


needs_tablestore = pytest.mark.skipif(
    _missing(TABLESTORE_VARIABLES), reason="TABLESTORE_* credentials are not set"
)
needs_mem0 = pytest.mark.skipif(_missing(("MEM0_API_KEY",)), reason="MEM0_API_KEY is not set")
needs_reme = pytest.mark.skipif(
    _missing(FLOW_VARIABLES) or os.environ.get("AGENTMEM_LIVE_REME") != "1",
    reason="FLOW_* variables and AGENTMEM_LIVE_REME=1 are not set",
)


async def eventually(read: Callable[[], Awaitable[T]], accept: Callable[[T], bool]) -> T:
    """``read()`` until ``accept`` holds, for up to a minute; the last value otherwise."""
    for _ in range(30):
        value = await read()
        if accept(value):
            return value
        await asyncio.sleep(2)
    return value


def _tablestore_credentials() -> dict[str, str]:
    keys = ("end_point", "instance_name", "access_key_id", "access_key_secret")
    return {key: os.environ[name] for key, name in zip(keys, TABLESTORE_VARIABLES, strict=True)}


@needs_tablestore
async def test_tablestore_memory() -> None:
    from agentmem.services.memory import TablestoreMemoryService

    user = f"live-{uuid.uuid4()}"
    service = TablestoreMemoryService(
        **_tablestore_credentials(),
        table_name="agentmem_live_memory",
        search_index_name="agentmem_live_memory_index",
    )
    async with service:
        assert await service.health() is True
        original = text_message("She was painting landscapes", metadata={"deep": {"a": [1]}})
        await service.add_memory(user, [original, text_message("tea")], session_id="s1")
        await service.add_memory(user, [text_message("more tea")], session_id="s2")
        listed = await eventually(lambda: service.list_memory(user), lambda v: len(v) == 3)
        assert texts(listed) == ["She was painting landscapes", "tea", "more tea"]
        assert listed[0].model_dump() == original.model_dump()
        found = await service.search_memory(user, "paints landscape")
        assert texts(found) == ["She was painting landscapes"]
        await service.delete_memory(user, "s1")
        remaining = await eventually(lambda: service.list_memory(user), lambda v: len(v) == 1)
        assert texts(remaining) == ["more tea"]
        await service.delete_memory(user)
        assert await eventually(lambda: service.list_memory(user), lambda v: v == []) == []


@needs_tablestore
async def test_tablestore_sessions() -> None:
    from agentmem.services.session_history import TablestoreSessionHistoryService

    user = f"live-{uuid.uuid4()}"
    service = TablestoreSessionHistoryService(
        **_tablestore_credentials(),
        session_table_name="agentmem_live_session",
        message_table_name="agentmem_live_message",
    )
    async with service:
        session = await service.create_session(user, "x" * 2000)
        await service.append_message(session, text_message("hi", usage={"t": 1}))
        stored = await service.get_session(user, session.id)
        assert texts(stored.messages) == ["hi"]
        assert [s.id for s in await service.list_sessions(user)] == [session.id]
        await service.delete_session(user, session.id)
        assert await service.list_sessions(user) == []


@needs_mem0
async def test_mem0_platform() -> None:
    from agentmem.services.memory import Mem0MemoryService

    user = f"live-{uuid.uuid4()}"
    async with Mem0MemoryService(infer=False) as service:
        try:
            await service.add_memory(user, [text_message("I drink jasmine tea")], "s1")
            listed = await eventually(lambda: service.list_memory(user), lambda v: len(v) == 1)
            assert texts(listed) == ["I drink jasmine tea"]
            found = await service.search_memory(user, "jasmine tea")
            assert texts(found) == ["I drink jasmine tea"]
        finally:
            await service.delete_memory(user)
        assert await eventually(lambda: service.list_memory(user), lambda v: v == []) == []


@needs_reme
async def test_reme_personal_memory(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentmem.services.memory import ReMePersonalMemoryService

    monkeypatch.chdir(str(tmp_path))
    user = f"live-{uuid.uuid4()}"
    async with ReMePersonalMemoryService(vector_store_backend="local") as service:
        await service.add_memory(
            user, [text_message("I really enjoy playing tennis on weekends")], "s1"
        )
        listed = await service.list_memory(user)
        assert listed, "ReMe extracted no memory from a clear personal statement"
        assert await service.search_memory(user, "tennis")
        await service.delete_memory(user)
        assert await service.list_memory(user) == []
