"""The SQLite backends of the conformance suite: the three services on one file.

Each test gets a file of its own in its ``tmp_path``; the services a test creates all
open that same file, as an application keeping memory, sessions and state together
would.
"""

from __future__ import annotations

import pytest

from agentmem import (
    MemoryService,
    SessionHistoryService,
    SQLiteMemoryService,
    SQLiteSessionHistoryService,
    SQLiteStateService,
    StateService,
)
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS, STATE_BACKENDS


def database(request: pytest.FixtureRequest) -> str:
    """The test's database file."""
    return str(request.getfixturevalue("tmp_path") / "agentmem.db")


async def _memory(request: pytest.FixtureRequest) -> MemoryService:
    return SQLiteMemoryService(database(request))


async def _sessions(request: pytest.FixtureRequest) -> SessionHistoryService:
    return SQLiteSessionHistoryService(database(request))


async def _state(request: pytest.FixtureRequest) -> StateService:
    return SQLiteStateService(database(request))


MEMORY_BACKENDS["sqlite"] = _memory
SESSION_HISTORY_BACKENDS["sqlite"] = _sessions
STATE_BACKENDS["sqlite"] = _state
