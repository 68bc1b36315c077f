"""A persistent IPython kernel running inside a sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from agentmem.errors import MissingExtraError, SandboxError
from agentmem.services.sandbox.context import SandboxContext
from agentmem.services.sandbox.models import CellError, CellResult
from agentmem.services.sandbox.processes import (
    is_zombie,
    kill_process_group,
    kill_until_gone,
    parent_of,
    process_children,
    process_ids,
)
from agentmem.services.sandbox.shell import CappedText

try:
    from jupyter_client.manager import AsyncKernelManager
except ImportError:  # pragma: no cover - depends on the installed extras
    AsyncKernelManager = None  # type: ignore[assignment,misc]

__all__ = ["SandboxKernel"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# How long a kernel may take to answer after start, and to obey an interrupt.
_STARTUP_SECONDS = 60.0
_INTERRUPT_GRACE_SECONDS = 3.0
_POLL_SECONDS = 0.5
# How long the forked copies of a kernel that were killed may take to be collected.
_REAP_SECONDS = 10.0


def _require_jupyter() -> None:
    if AsyncKernelManager is None:
        raise MissingExtraError("IPython sandboxes", "sandbox", "jupyter_client")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _descendants(pid: int) -> list[int]:
    children = process_children()
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _open_log(path: Path) -> BinaryIO:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "ab")


def _released() -> SandboxError:
    return SandboxError("the sandbox was released while the cell ran")


class SandboxKernel:
    """An ipykernel started through the sandbox's isolation, talked to over unix sockets.

    Unix sockets (jupyter's ``ipc`` transport) work across the network namespace that
    keeps the kernel off the network. One cell runs at a time.
    """

    def __init__(self, context: SandboxContext, *, uid: int | None) -> None:
        """A kernel of the sandbox ``context``, run as ``uid`` (None: the service's)."""
        _require_jupyter()
        self._context = context
        self._uid = uid
        self._km: Any = None
        self._kc: Any = None
        self._kernel_pid: int | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _start(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox was released")
        context, uid = self._context, self._uid

        class _Manager(AsyncKernelManager):
            def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
                return context.wrap(
                    [
                        sys.executable,
                        "-m",
                        "ipykernel_launcher",
                        "-f",
                        self.connection_file,
                        "--HistoryManager.enabled=False",
                        "--IPKernelApp.log_level=CRITICAL",
                    ],
                    uid=uid,
                )

            def write_connection_file(self, **kwargs: Any) -> None:
                super().write_connection_file(**kwargs)
                # jupyter writes it 0600 for us; the kernel runs as the sandbox's uid.
                if uid is not None:
                    os.chown(self.connection_file, uid, uid)

        km = _Manager(
            transport="ipc",
            ip=str(context.run_dir / "sockets" / "k"),
            connection_file=str(context.run_dir / "kernel.json"),
        )
        self._km = km
        try:
            log = await asyncio.to_thread(_open_log, context.run_dir / "kernel.log")
            with log:
                await km.start_kernel(
                    # Not a child jupyter should watch: in a PID namespace the kernel's parent
                    # is pid 1, which ipykernel would take for "parent died" and exit.
                    independent=True,
                    env=context.environment(),
                    cwd=str(context.work_dir),
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
        except OSError as exc:
            # ENOSPC when the session's disk_bytes or disk_files are used up: the kernel's
            # connection file and log live there too.
            await self._shutdown()
            raise SandboxError(
                f"the sandbox's IPython kernel could not start: {exc.strerror}"
            ) from None
        kc = km.client()
        kc.start_channels()
        self._kc = kc
        try:
            await kc.wait_for_ready(timeout=_STARTUP_SECONDS)
        except RuntimeError as exc:
            await self._shutdown()
            raise SandboxError(f"the sandbox's IPython kernel did not start: {exc}") from exc
        self._kernel_pid = self._find_kernel_pid()

    def _launch_pid(self) -> int | None:
        provisioner = getattr(self._km, "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        return pid if isinstance(pid, int) else None

    def _find_kernel_pid(self) -> int | None:
        launched = self._launch_pid()
        if launched is None:
            return None
        for pid in [launched, *_descendants(launched)]:
            # The kernel itself, not bwrap or the launcher with it among their arguments.
            if _cmdline(pid).split(b"\0")[1:3] == [b"-m", b"ipykernel_launcher"]:
                return pid
        return None

    def _kill_forked_copies(self) -> None:
        """Kill processes that are forks of the kernel itself (e.g. a fork bomb's debris).

        They cannot talk to anyone, yet they hold the sandbox's process budget. They are
        found by their command line, which names this kernel's own connection file, so
        also those reparented away from the kernel are found.
        """
        kernel = self._kernel_pid
        own = _cmdline(kernel) if kernel is not None else b""
        killed: set[int] = set()

        def copies() -> list[int]:
            killed.update(pid for pid in process_ids() if pid != kernel and _cmdline(pid) == own)
            # A copy being killed has lost its command line but still counts against the
            # process limit until it has exited: wait for that too.
            return [pid for pid in killed if not is_zombie(pid)]

        if not own:
            return
        kill_until_gone(copies)
        # Copies orphaned to the host's init count against the session's process limit
        # until init collects them, which some inits do only every few seconds. (Those
        # left to the kernel itself count until it exits.)
        deadline = time.monotonic() + _REAP_SECONDS
        while time.monotonic() < deadline and any(
            parent_of(pid) not in (None, kernel) for pid in killed
        ):
            time.sleep(0.05)

    async def close(self) -> None:
        """Kill the kernel for good; a cell still running reports a SandboxError."""
        self._closed = True
        await self._shutdown()

    async def _restart(self) -> None:
        await self._shutdown()
        await self._start()

    async def _shutdown(self) -> None:
        """Kill the kernel and everything it started."""
        km, kc, launched = self._km, self._kc, self._launch_pid()
        self._km = self._kc = self._kernel_pid = None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            # The kernel may be dead already, or half started; the group kill below is
            # what guarantees that nothing survives.
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=True)
        if launched is not None:
            kill_process_group(launched)

    async def _alive(self) -> bool:
        return self._km is not None and bool(await self._km.is_alive())

    def _interrupt(self) -> None:
        # A message, not SIGINT to the process group: the group holds bubblewrap too,
        # and SIGINT would kill it and the kernel with it.
        msg = self._kc.session.msg("interrupt_request", content={})
        self._kc.control_channel.send(msg)

    async def execute(self, code: str, seconds: float) -> CellResult:
        """Run one cell for at most ``seconds``: then it is interrupted, and the kernel is
        restarted if it does not obey."""
        async with self._lock:
            restarted = False
            if self._km is None:
                await self._start()
            elif not await self._alive():
                await self._restart()
                restarted = True
            return await self._execute(code, seconds, restarted)

    async def _execute(self, code: str, seconds: float, restarted: bool) -> CellResult:
        started = time.monotonic()
        limit = self._context.limits.max_output_bytes
        out, err = CappedText(limit), CappedText(limit)
        state: dict[str, Any] = {"result": None, "display": [], "error": None, "count": None}
        msg_id = self._kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        outcome = await self._collect(msg_id, out, err, state, started + seconds)
        if outcome == "timeout":
            self._interrupt()
            outcome = await self._collect(
                msg_id, out, err, state, time.monotonic() + _INTERRUPT_GRACE_SECONDS
            )
            if outcome != "idle":
                await self._restart()
                restarted = True
            state["error"] = CellError(
                ename="TimeoutError",
                evalue=f"the cell ran longer than {seconds:g} s and was "
                + ("stopped by restarting the kernel" if restarted else "interrupted"),
                traceback=[],
            )
            status = "timeout"
        elif outcome == "died":
            await self._restart()
            restarted = True
            state["error"] = CellError(
                ename="KernelDied",
                evalue="the kernel died while running the cell (a resource limit, or a "
                "crash); it was restarted and earlier variables are gone",
                traceback=[],
            )
            status = "error"
        else:
            status = "error" if state["error"] is not None else "ok"
            await self._read_reply(msg_id, state)
        if status != "ok":
            await asyncio.to_thread(self._kill_forked_copies)
        return CellResult(
            status=status,
            stdout=out.text(),
            stderr=err.text(),
            result=state["result"],
            display=state["display"],
            error=state["error"],
            execution_count=state["count"],
            kernel_restarted=restarted,
            truncated=out.truncated or err.truncated,
            duration_seconds=round(time.monotonic() - started, 3),
        )

    async def _collect(
        self,
        msg_id: str,
        out: CappedText,
        err: CappedText,
        state: dict[str, Any],
        deadline: float,
    ) -> str:
        """Read output of ``msg_id`` until the kernel is idle, ``deadline``, or it dies."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            try:
                msg = await self._kc.get_iopub_msg(timeout=min(remaining, _POLL_SECONDS))
            except queue.Empty:
                if self._closed:
                    raise _released() from None
                if not await self._alive():
                    return "died"
                continue
            except (Exception, asyncio.CancelledError):
                # Closing the channels under a waiting read cancels or breaks it; that is a
                # release, unless this task itself is being cancelled.
                task = asyncio.current_task()
                if self._closed and task is not None and not task.cancelling():
                    raise _released() from None
                raise
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue  # leftovers of an earlier, interrupted cell
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (out if content.get("name") == "stdout" else err).add(content.get("text", ""))
            elif kind == "execute_result":
                state["result"] = content.get("data", {}).get("text/plain")
                state["count"] = content.get("execution_count")
            elif kind == "display_data":
                text = content.get("data", {}).get("text/plain")
                if text is not None:
                    state["display"].append(text)
            elif kind == "error":
                state["error"] = CellError(
                    ename=content.get("ename", ""),
                    evalue=content.get("evalue", ""),
                    traceback=[_ANSI.sub("", line) for line in content.get("traceback", [])],
                )
            elif kind == "status" and content.get("execution_state") == "idle":
                return "idle"

    async def _read_reply(self, msg_id: str, state: dict[str, Any]) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                reply = await self._kc.get_shell_msg(timeout=deadline - time.monotonic())
            except queue.Empty:
                return
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                state["count"] = reply["content"].get("execution_count", state["count"])
                return
