"""Agent state per user, session and round."""

from typing import Any

from agentmem._lazy import lazy_attribute
from agentmem.services.agent_state.state_service import InMemoryStateService, StateService

__all__ = [
    "InMemoryStateService",
    "RedisStateService",
    "SQLiteStateService",
    "StateService",
    "StateServiceFactory",
]

_LAZY = {
    "RedisStateService": "agentmem.services.agent_state.redis_state_service",
    "SQLiteStateService": "agentmem.services.agent_state.sqlite_state_service",
    "StateServiceFactory": "agentmem.services.factories",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
