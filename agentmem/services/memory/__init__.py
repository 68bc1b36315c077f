"""Long-term memory: the abstract service, its backends and their factory.

Backends with optional dependencies are imported on first use, so this package imports
without their extras installed.
"""

from typing import Any

from agentmem._lazy import lazy_attribute
from agentmem.services.memory.in_memory_memory_service import InMemoryMemoryService
from agentmem.services.memory.memory_service import MemoryHit, MemoryService

__all__ = [
    "InMemoryMemoryService",
    "Mem0MemoryService",
    "MemoryHit",
    "MemoryService",
    "MemoryServiceFactory",
    "ReMePersonalMemoryService",
    "ReMeTaskMemoryService",
    "RedisMemoryService",
    "SQLiteMemoryService",
    "TablestoreMemoryService",
]

_LAZY = {
    "RedisMemoryService": "agentmem.services.memory.redis_memory_service",
    "SQLiteMemoryService": "agentmem.services.memory.sqlite_memory_service",
    "TablestoreMemoryService": "agentmem.services.memory.tablestore_memory_service",
    "Mem0MemoryService": "agentmem.services.memory.mem0_memory_service",
    "ReMePersonalMemoryService": "agentmem.services.memory.reme_memory_service",
    "ReMeTaskMemoryService": "agentmem.services.memory.reme_memory_service",
    "MemoryServiceFactory": "agentmem.services.factories",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
