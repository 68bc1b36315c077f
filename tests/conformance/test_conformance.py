"""agentmem's conformance suite on every backend of ``tests/backends.py``, one call per table."""

from __future__ import annotations

from agentmem.testing import conformance_suite
from tests.backends import MEMORY_BACKENDS, SESSION_HISTORY_BACKENDS, STATE_BACKENDS

TestMemory = conformance_suite(memory=MEMORY_BACKENDS)
TestSessionHistory = conformance_suite(session_history=SESSION_HISTORY_BACKENDS)
TestState = conformance_suite(state=STATE_BACKENDS)
