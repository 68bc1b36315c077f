"""Where one sandbox lives and how its processes are started: :class:`SandboxContext`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agentmem.errors import SandboxError
from agentmem.services.sandbox.cgroups import SessionCgroup
from agentmem.services.sandbox.isolation import Isolation
from agentmem.services.sandbox.models import SandboxLimits, ShellResult
from agentmem.services.sandbox.shell import run_sandboxed

__all__ = ["BlockingSlots", "SandboxContext"]

T = TypeVar("T")


class BlockingSlots:
    """Runs one session's blocking work (sync tools) on the service's tool threads.

    At most ``concurrency`` run at a time per session, and a slot is only free again when
    its thread is done, even after its caller gave up waiting: a session whose work is
    stuck blocks itself, never the threads other sessions or the service need.
    """

    def __init__(self, executor: Executor, concurrency: int) -> None:
        self._executor = executor
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self, func: Callable[[], T], seconds: float, what: str) -> T:
        """``func()`` in a thread; a :class:`SandboxError` if it has not returned, waiting
        for a slot included, after ``seconds``."""
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await self._slots.acquire()
                try:
                    future = asyncio.get_running_loop().run_in_executor(self._executor, func)
                except BaseException:
                    self._slots.release()
                    raise
                future.add_done_callback(lambda _done: self._slots.release())
                return await asyncio.shield(future)
        except TimeoutError:
            if not deadline.expired():
                raise  # raised by func itself
            raise SandboxError(f"{what} took longer than {seconds:g} s") from None


@dataclass(frozen=True)
class SandboxContext:
    """Where a sandbox lives and how its processes are isolated.

    All sandboxes of one (session, user) share ``work_dir`` (the only directory sandboxed
    code may write besides a private /tmp and its ``run_dir`` subdirectories), ``uid``,
    ``cgroup`` and the session's disk space; ``run_dir`` is private to one sandbox and
    holds its kernel's connection file and log (owned by the service) and the sandbox's
    ``home``, ``tmp`` and ``sockets``. Blocking work of its tools goes through
    :meth:`run_blocking`.
    """

    sandbox_id: str
    sandbox_type: str
    session_id: str
    user_id: str | None
    work_dir: Path
    run_dir: Path
    isolation: Isolation
    uid: int | None
    cgroup: SessionCgroup | None
    limits: SandboxLimits
    blocking: BlockingSlots

    @property
    def home(self) -> Path:
        return self.run_dir / "home"

    @property
    def tmp(self) -> Path:
        return self.run_dir / "tmp"

    def environment(self) -> dict[str, str]:
        return self.isolation.environment(self.home, self.tmp)

    def seconds(self, requested: float | None) -> float:
        """The time one call may take: what the caller asked for, at most
        ``limits.timeout_seconds`` (the default)."""
        limit = self.limits.timeout_seconds
        return min(requested, limit) if requested else limit

    def wrap(self, argv: list[str], *, uid: int | None = None) -> list[str]:
        """``argv`` as a sandboxed command line (rlimits, namespaces, uid, cgroup)."""
        return self.isolation.command(
            argv,
            work_dir=self.work_dir,
            writable=[self.work_dir, self.run_dir],
            uid=uid,
            cgroup=self.cgroup,
        )

    async def run(self, argv: list[str], seconds: float | None = None) -> ShellResult:
        """Run ``argv`` sandboxed in ``work_dir`` with the limits, killed after ``seconds``
        (at most, and by default, ``limits.timeout_seconds``); a timeout is reported, not
        raised."""
        return await run_sandboxed(
            self.wrap(argv, uid=self.uid),
            env=self.environment(),
            cwd=self.work_dir,
            seconds=self.seconds(seconds),
            max_output_bytes=self.limits.max_output_bytes,
        )

    async def run_blocking(self, func: Callable[[], T], what: str) -> T:
        """``func()`` in one of the session's tool threads, given up (a
        :class:`SandboxError`) after ``limits.timeout_seconds``; ``what`` names it there."""
        return await self.blocking.run(func, self.limits.timeout_seconds, what)
