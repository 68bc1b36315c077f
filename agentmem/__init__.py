"""agentmem: memory, session history, state and sandbox services for LLM agents."""

from typing import Any

from agentmem._lazy import lazy_attribute
from agentmem.errors import (
    AgentMemError,
    BackendError,
    CorruptDataError,
    InvalidArgumentError,
    MissingExtraError,
    NotFoundError,
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
    ServiceNotStartedError,
    UnsupportedOperationError,
)
from agentmem.schemas.agent_schemas import (
    AudioContent,
    ContentType,
    DataContent,
    FileContent,
    ImageContent,
    Message,
    MessageList,
    MessageType,
    RefusalContent,
    Role,
    RunStatus,
    TextContent,
)
from agentmem.schemas.session import Session
from agentmem.services.agent_state.state_service import (
    InMemoryStateService,
    StateRounds,
    StateService,
)
from agentmem.services.base import Capability, ServiceWithLifecycleManager
from agentmem.services.factories import (
    MemoryServiceFactory,
    SessionHistoryServiceFactory,
    StateServiceFactory,
)
from agentmem.services.memory.in_memory_memory_service import InMemoryMemoryService
from agentmem.services.memory.memory_service import (
    MemoryHit,
    MemoryHitList,
    MemoryRecord,
    MemoryRecordList,
    MemoryService,
)
from agentmem.services.session_history.in_memory_session_history_service import (
    InMemorySessionHistoryService,
)
from agentmem.services.session_history.session_history_service import (
    SessionHistoryService,
    SessionList,
)

__version__ = "0.1.0"

__all__ = [
    "AgentMemError",
    "AudioContent",
    "BackendError",
    "Capability",
    "ContentType",
    "CorruptDataError",
    "DataContent",
    "FileContent",
    "ImageContent",
    "InMemoryMemoryService",
    "InMemorySessionHistoryService",
    "InMemoryStateService",
    "InvalidArgumentError",
    "MemoryHit",
    "MemoryHitList",
    "MemoryRecord",
    "MemoryRecordList",
    "MemoryService",
    "MemoryServiceFactory",
    "Message",
    "MessageList",
    "MessageType",
    "MissingExtraError",
    "NotFoundError",
    "RedisConnection",
    "RedisMemoryService",
    "RedisSessionHistoryService",
    "RedisStateService",
    "RefusalContent",
    "Role",
    "RunStatus",
    "SQLiteMemoryService",
    "SQLiteSessionHistoryService",
    "SQLiteStateService",
    "SandboxAuthError",
    "SandboxError",
    "SandboxPathError",
    "SandboxService",
    "SandboxUnavailableError",
    "ServiceNotStartedError",
    "ServiceWithLifecycleManager",
    "Session",
    "SessionHistoryService",
    "SessionHistoryServiceFactory",
    "SessionList",
    "StateRounds",
    "StateService",
    "StateServiceFactory",
    "TextContent",
    "UnsupportedOperationError",
    "__version__",
]

_LAZY = {
    "RedisConnection": "agentmem.services._redis",
    "RedisMemoryService": "agentmem.services.memory.redis_memory_service",
    "RedisSessionHistoryService": (
        "agentmem.services.session_history.redis_session_history_service"
    ),
    "RedisStateService": "agentmem.services.agent_state.redis_state_service",
    "SQLiteMemoryService": "agentmem.services.memory.sqlite_memory_service",
    "SQLiteSessionHistoryService": (
        "agentmem.services.session_history.sqlite_session_history_service"
    ),
    "SQLiteStateService": "agentmem.services.agent_state.sqlite_state_service",
    "SandboxService": "agentmem.services.sandbox_service",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
