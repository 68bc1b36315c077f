"""The Redis memory backend.

- :mod:`.service`: :class:`RedisMemoryService`, the storage core of
  :class:`~agentmem.services.memory.memory_service.MemoryService`;
- :mod:`.keys`: the Redis keys of one user, by name;
- :mod:`.codec`: how messages, index entries, postings and vectors are stored as text;
- :mod:`.index_view`: the ranking's view of one user's index;
- :mod:`.search_cache`: what searches read of users' indexes, kept in the process
  between searches;
- :mod:`.vector_cache`: users' vectors kept in the process between semantic searches;
- :mod:`.writes`: writes and removals, in one script or in bounded steps;
- :mod:`.scripts`: the Lua scripts, kept as ``lua/*.lua`` package data.
"""

from agentmem.services._redis import RedisConnection
from agentmem.services.memory.redis.service import RedisMemoryService

__all__ = ["RedisConnection", "RedisMemoryService"]
