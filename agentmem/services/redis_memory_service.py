"""``RedisMemoryService`` at the import path of AgentScope Runtime 1.0's documentation.

``from agentmem.services.redis_memory_service import RedisMemoryService`` is the same
class as ``from agentmem.services.memory import RedisMemoryService``.
"""

from agentmem.services.memory.redis_memory_service import RedisMemoryService

__all__ = ["RedisMemoryService"]
