"""AgentScope 1.0 adapters; need ``agentmem-services[agentscope]`` when used."""

from typing import Any

from agentmem._lazy import lazy_attribute

__all__ = ["AgentScopeLongTermMemory", "message_to_msg", "msg_to_message"]

_LAZY = {
    "AgentScopeLongTermMemory": "agentmem.adapters.agentscope.long_term_memory",
    "message_to_msg": "agentmem.adapters.agentscope.long_term_memory",
    "msg_to_message": "agentmem.adapters.agentscope.long_term_memory",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
