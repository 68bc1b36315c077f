"""Where one sandbox lives and how its processes are started: :class:`SandboxContext`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentmem.services.sandbox.isolation import Isolation
from agentmem.services.sandbox.models import SandboxLimits, ShellResult
from agentmem.services.sandbox.shell import run_sandboxed

__all__ = ["SandboxContext"]


@dataclass(frozen=True)
class SandboxContext:
    """Where a sandbox lives and how its processes are isolated.

    All sandboxes of one (session, user) share ``work_dir`` (the only directory sandboxed
    code may write besides a private /tmp and its ``run_dir`` subdirectories) and ``uid``;
    ``run_dir`` is private to one sandbox and holds its kernel's connection file and log
    (owned by the service) and the sandbox's ``home``, ``tmp`` and ``sockets``.
    """

    sandbox_id: str
    sandbox_type: str
    session_id: str
    user_id: str | None
    work_dir: Path
    run_dir: Path
    isolation: Isolation
    uid: int | None
    limits: SandboxLimits

    @property
    def home(self) -> Path:
        return self.run_dir / "home"

    @property
    def tmp(self) -> Path:
        return self.run_dir / "tmp"

    def environment(self) -> dict[str, str]:
        return self.isolation.environment(self.home, self.tmp)

    def wrap(self, argv: list[str], *, uid: int | None = None) -> list[str]:
        """``argv`` as a sandboxed command line (rlimits, namespaces, uid)."""
        return self.isolation.command(
            argv, work_dir=self.work_dir, writable=[self.work_dir, self.run_dir], uid=uid
        )

    async def run(self, argv: list[str], seconds: float | None = None) -> ShellResult:
        """Run ``argv`` sandboxed in ``work_dir`` with the limits, killed after ``seconds``
        (default ``limits.timeout_seconds``); a timeout is reported, not raised."""
        return await run_sandboxed(
            self.wrap(argv, uid=self.uid),
            env=self.environment(),
            cwd=self.work_dir,
            seconds=seconds or self.limits.timeout_seconds,
            max_output_bytes=self.limits.max_output_bytes,
        )
