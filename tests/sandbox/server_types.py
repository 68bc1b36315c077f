"""A sandbox type for the server tests, registered in the server by ``--import``."""

from __future__ import annotations

from agentmem.services.sandbox import SandboxEngine, register_sandbox_type, tool

#: Text that must never reach a client: the server answers unexpected errors without it.
SECRET = "internal detail: /etc/agentmem/secret-path"


class CrashingEngine(SandboxEngine):
    """A type whose tool fails with an exception that is not agentmem's own."""

    @tool
    async def crash(self) -> None:
        raise RuntimeError(SECRET)


register_sandbox_type("crashing", CrashingEngine, replace=True)
