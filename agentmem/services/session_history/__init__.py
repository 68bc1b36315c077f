"""Session history: conversation sessions and their messages."""

from typing import Any

from agentmem._lazy import lazy_attribute
from agentmem.services.session_history.in_memory_session_history_service import (
    InMemorySessionHistoryService,
)
from agentmem.services.session_history.session_history_service import SessionHistoryService

__all__ = [
    "InMemorySessionHistoryService",
    "RedisSessionHistoryService",
    "SQLiteSessionHistoryService",
    "SessionHistoryService",
    "SessionHistoryServiceFactory",
    "TablestoreSessionHistoryService",
]

_LAZY = {
    "RedisSessionHistoryService": (
        "agentmem.services.session_history.redis_session_history_service"
    ),
    "SQLiteSessionHistoryService": (
        "agentmem.services.session_history.sqlite_session_history_service"
    ),
    "TablestoreSessionHistoryService": (
        "agentmem.services.session_history.tablestore_session_history_service"
    ),
    "SessionHistoryServiceFactory": "agentmem.services.factories",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
