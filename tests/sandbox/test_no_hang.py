"""Nothing one session puts in its directory or asks of its tools can hang a call, or keep
another user from connecting."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from agentmem.services.sandbox import (
    FilesystemSandbox,
    SandboxEngine,
    SandboxError,
    SandboxPathError,
    register_sandbox_type,
    tool,
)
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import LIMITS

# What the stalling tools wait for; set once a test is done with them.
_RELEASE = threading.Event()


class StallingEngine(SandboxEngine):
    """A sandbox type whose one tool blocks its thread, like a file operation that hangs."""

    @tool
    def stall(self, seconds: float) -> bool:
        return _RELEASE.wait(seconds)


async def _timed(call: asyncio.Future[object] | asyncio.Task[object]) -> float:
    started = time.monotonic()
    await asyncio.wait_for(call, 10)
    return time.monotonic() - started


async def test_fifos_sockets_and_devices_are_refused_at_once(service: SandboxService) -> None:
    """Embedded and through the server."""
    await _refuses_specials(service)


async def test_fifos_sockets_and_devices_are_refused_in_each_isolation_mode(
    isolated_service: SandboxService,
) -> None:
    await _refuses_specials(isolated_service)


async def _refuses_specials(service: SandboxService) -> None:
    sid = f"specials-{uuid.uuid4().hex[:8]}"
    [fs] = await service.connect(sid, "mallory", ["filesystem"])
    assert isinstance(fs, FilesystemSandbox)
    made = await fs.arun_shell_command(
        "mkfifo pipe && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock\")'"
    )
    assert made.returncode == 0, made
    specials = ["pipe", "sock"]
    if os.geteuid() == 0:
        # Sandboxed code cannot make device nodes; a root service's host could hold one.
        os.mknod(f"{fs.work_dir}/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        specials.append("null")
    phases: dict[str, Callable[[str], Awaitable[object]]] = {
        "reads": lambda path: fs.aread_file(path),
        "writes": lambda path: fs.awrite_file(path, "x"),
    }
    # Reads and writes apart: a read and a write of one FIFO would let each other through.
    for phase, call in phases.items():
        calls = [call(path) for path in specials for _ in range(6)]
        running = asyncio.gather(*calls, return_exceptions=True)
        # Meanwhile another user connects as quickly as ever.
        other = f"{sid}-{phase}"
        assert await _timed(asyncio.ensure_future(service.connect(other, "bob"))) < 1.0
        await service.release(other, "bob")
        results = await asyncio.wait_for(running, 10)
        assert all(isinstance(r, SandboxPathError) for r in results), results
        assert "named pipe" in str(results[0]) and "socket" in str(results[6])
    for path in specials:
        with pytest.raises(SandboxPathError):
            await asyncio.wait_for(fs.aedit_file(path, [{"old_text": "a", "new_text": ""}]), 10)
        with pytest.raises(SandboxPathError):
            await asyncio.wait_for(fs.amove_file(path, f"{path}-moved"), 10)
    # Listing and describing them is fine; they are still there.
    assert (await fs.aget_file_info("pipe")).type == "other"
    assert {e.name for e in await fs.alist_directory()} == set(specials)
    await service.release(sid, "mallory")


async def test_blocked_tool_threads_of_one_session_starve_no_one() -> None:
    register_sandbox_type("stalling", StallingEngine, replace=True)
    _RELEASE.clear()
    limits = LIMITS.model_copy(update={"timeout_seconds": 2})
    async with SandboxService(limits=limits) as service:
        [staller] = await service.connect("staller", "mallory", ["stalling"])
        stuck = [asyncio.ensure_future(staller.acall("stall", seconds=60)) for _ in range(30)]
        try:
            await asyncio.sleep(0.2)
            # Another user connects and uses the file tools, which run in threads too.
            assert await _timed(asyncio.ensure_future(service.connect("other", "bob"))) < 1.0
            [files] = await service.connect("other", "bob", ["filesystem"])
            assert isinstance(files, FilesystemSandbox)
            assert await _timed(asyncio.ensure_future(files.awrite_file("a.txt", "a"))) < 1.0
            # The stuck calls are given up at the time limit, queued ones included.
            results = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), 10)
            assert all(isinstance(r, SandboxError) for r in results), results
            assert "took longer than 2 s" in str(results[0])
        finally:
            _RELEASE.set()
