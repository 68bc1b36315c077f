"""Helpers for testing and trying agentmem: throwaway servers its backends can talk to."""
