"""Adapters exposing agentmem services to agent frameworks."""
