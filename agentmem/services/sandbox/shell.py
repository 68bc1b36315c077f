"""Running one sandboxed command with a wall-clock timeout and capped output."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from agentmem.services.sandbox.models import ShellResult
from agentmem.services.sandbox.processes import kill_process_group

__all__ = ["CappedText", "run_sandboxed", "shell_path", "signal_name"]

# How long output may keep flowing after the command itself exited or was killed.
_DRAIN_SECONDS = 1.0


class CappedText:
    """Accumulates text up to ``limit`` UTF-8 bytes and remembers whether more came."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def add(self, text: str) -> None:
        if self.truncated:
            return
        data = text.encode("utf-8", "replace")
        room = self._limit - self._size
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self._parts.append(data.decode("utf-8", "ignore"))
        self._size += len(data)

    def text(self) -> str:
        joined = "".join(self._parts)
        if self.truncated:
            joined += f"\n[output truncated at {self._limit} bytes]"
        return joined


def shell_path() -> str:
    """bash when the host has it (what users expect of a shell), else POSIX sh."""
    return shutil.which("bash", path="/usr/bin:/bin") or "/bin/sh"


def signal_name(returncode: int) -> str | None:
    """Name of the signal that ended a process, from Popen's or a shell's convention."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    with contextlib.suppress(ValueError):
        return signal.Signals(number).name if number else None
    return None


async def _pump(stream: asyncio.StreamReader, sink: CappedText) -> None:
    # An incremental decoder, so a character split between two reads stays intact.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # Keep reading after the cap so the command never blocks on a full pipe.
    while chunk := await stream.read(65536):
        sink.add(decoder.decode(chunk))
    sink.add(decoder.decode(b"", final=True))


async def run_sandboxed(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    seconds: float,
    max_output_bytes: int,
) -> ShellResult:
    """Run ``argv`` (already wrapped by the isolation layer) and collect its output.

    The command gets its own process group; when it exits or times out the whole group is
    killed, so background processes it started do not outlive it.
    """
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = CappedText(max_output_bytes), CappedText(max_output_bytes)
    pumps = [
        asyncio.create_task(_pump(proc.stdout, out)),
        asyncio.create_task(_pump(proc.stderr, err)),
    ]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        timed_out = True
    finally:
        # Also on cancellation: nothing the command started may survive the call.
        kill_process_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _DRAIN_SECONDS * 5)
        _done, pending = await asyncio.wait(pumps, timeout=_DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    if timed_out:
        err.add(f"\n[killed: the command ran longer than {seconds:g} s]")
    return ShellResult(
        returncode=returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        signal=None if timed_out else signal_name(returncode),
        truncated=out.truncated or err.truncated,
        duration_seconds=round(time.monotonic() - started, 3),
    )
