"""``RedisMemoryService`` at AgentScope Runtime 1.0's module path; it lives in
:mod:`agentmem.services.memory.redis`."""

from agentmem.services.memory.redis.service import RedisMemoryService

__all__ = ["RedisMemoryService"]
