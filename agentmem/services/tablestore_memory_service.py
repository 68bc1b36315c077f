"""The Tablestore memory service at the import path of AgentScope Runtime's documentation.

``from agentmem.services.tablestore_memory_service import SearchStrategy`` works as
``agentscope_runtime.engine.services.tablestore_memory_service`` did; the service lives
in :mod:`agentmem.services.memory.tablestore_memory_service`.
"""

from agentmem.services.memory.tablestore_memory_service import (
    SearchStrategy,
    TablestoreMemoryService,
)

__all__ = ["SearchStrategy", "TablestoreMemoryService"]
