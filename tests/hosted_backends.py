"""The hosted backends' local stand-ins, registered in the conformance tables.

Each entry runs the real agentmem service over something that works offline: the
Tablestore services over the SDK's store classes faked in memory
(``tests/hosted/fakes.py``), and :class:`Mem0MemoryService` over mem0's own open-source
engine (``AsyncMemory`` with a local Qdrant and a deterministic embedder). An entry is
skipped when its extra is not installed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from agentmem import MemoryService, SessionHistoryService
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS

# mem0 reads these when imported: no telemetry, and its files in a scratch directory.
_MEM0_DIR = tempfile.mkdtemp(prefix="agentmem-mem0-")
atexit.register(shutil.rmtree, _MEM0_DIR, True)
os.environ.setdefault("MEM0_TELEMETRY", "False")
os.environ.setdefault("MEM0_DIR", _MEM0_DIR)


async def _tablestore_fake(request: pytest.FixtureRequest) -> MemoryService:
    pytest.importorskip("tablestore_for_agent_memory")
    from agentmem.services.memory.tablestore_memory_service import TablestoreMemoryService
    from tests.hosted.fakes import FakeAsyncKnowledgeStore

    return TablestoreMemoryService(store_factory=FakeAsyncKnowledgeStore)


async def _tablestore_fake_vector(request: pytest.FixtureRequest) -> MemoryService:
    pytest.importorskip("tablestore_for_agent_memory")
    from agentmem.services.memory.tablestore_memory_service import (
        SearchStrategy,
        TablestoreMemoryService,
    )
    from tests.hosted.fakes import FakeAsyncKnowledgeStore, HashingEmbedder

    return TablestoreMemoryService(
        store_factory=FakeAsyncKnowledgeStore,
        search_strategy=SearchStrategy.VECTOR,
        embedder=HashingEmbedder(64),
    )


async def _tablestore_fake_sessions(request: pytest.FixtureRequest) -> SessionHistoryService:
    pytest.importorskip("tablestore_for_agent_memory")
    from agentmem.services.session_history.tablestore_session_history_service import (
        TablestoreSessionHistoryService,
    )
    from tests.hosted.fakes import FakeAsyncMemoryStore

    return TablestoreSessionHistoryService(store_factory=FakeAsyncMemoryStore)


async def _mem0_local(request: pytest.FixtureRequest) -> MemoryService:
    pytest.importorskip("mem0")
    from agentmem.services.memory.mem0_memory_service import Mem0MemoryService
    from tests.hosted.mem0_engine import close_async_memory, local_async_memory

    memory = local_async_memory(request.getfixturevalue("tmp_path"))
    request.addfinalizer(lambda: close_async_memory(memory))
    return Mem0MemoryService(memory=memory, infer=False)


MEMORY_BACKENDS["tablestore_fake"] = _tablestore_fake
MEMORY_BACKENDS["tablestore_fake_vector"] = _tablestore_fake_vector
MEMORY_BACKENDS["mem0_local"] = _mem0_local
SESSION_HISTORY_BACKENDS["tablestore_fake"] = _tablestore_fake_sessions
