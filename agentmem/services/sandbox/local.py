"""Embedded sandboxes: local processes, one directory (and, as root, uid, cgroup and
tmpfs) per session."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentmem._validation import check_id, check_optional_id
from agentmem.errors import (
    InvalidArgumentError,
    NotFoundError,
    SandboxError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox.backend import SandboxBackend, SandboxDescriptor
from agentmem.services.sandbox.cgroups import SessionCgroup
from agentmem.services.sandbox.context import BlockingSlots, SandboxContext
from agentmem.services.sandbox.engines import SandboxEngine
from agentmem.services.sandbox.isolation import Isolation, IsolationMode
from agentmem.services.sandbox.models import SandboxLimits, ServiceInfo
from agentmem.services.sandbox.processes import kill_uid_processes
from agentmem.services.sandbox.registry import engine_class, sandbox_types
from agentmem.services.sandbox.storage import (
    make_root,
    mount_tmpfs,
    remove_orphans,
    remove_tree,
    unmount,
)

__all__ = ["LocalBackend", "SessionKey", "session_key"]

log = logging.getLogger(__name__)

# Threads running the sync tools of all sessions (the file tools), apart from the
# threads the service itself uses to create and delete sessions; and how many of them one
# session may hold at a time.
_TOOL_THREADS = 16
_TOOL_THREADS_PER_SESSION = 2

# (session_id, user_id): a tuple, so no two different pairs can ever name one session.
SessionKey = tuple[str, str | None]


def session_key(session_id: str, user_id: str | None) -> SessionKey:
    """The key of a session, its ids checked as in every service."""
    return check_id(session_id, "session_id"), check_optional_id(user_id, "user_id")


async def _offload(func: Callable[..., None], *args: Any) -> None:
    """Run blocking cleanup in a thread, or inline once the interpreter is exiting."""
    try:
        future = asyncio.get_running_loop().run_in_executor(None, func, *args)
    except RuntimeError:
        # At exit (the atexit hook) the thread pools refuse new work.
        func(*args)
        return
    await future


@dataclass
class _Session:
    key: SessionKey
    directory: Path
    work_dir: Path
    uid: int | None
    cgroup: SessionCgroup | None
    mounted: bool
    blocking: BlockingSlots
    sandboxes: dict[str, tuple[SandboxDescriptor, SandboxEngine]] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    active_calls: int = 0


class LocalBackend(SandboxBackend):
    """Runs sandboxes as local processes under ``tempfile.gettempdir()``.

    ``idle_timeout`` (seconds): sessions without a call for that long are released by a
    background task; ``None`` keeps them until :meth:`release` or :meth:`stop`.
    """

    def __init__(
        self,
        *,
        isolation: IsolationMode = "auto",
        limits: SandboxLimits | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        if idle_timeout is not None and idle_timeout <= 0:
            raise InvalidArgumentError("idle_timeout", "must be positive (or None to never reap)")
        self._mode: IsolationMode = isolation
        self.limits = limits or SandboxLimits()
        self.idle_timeout = idle_timeout
        self._isolation: Isolation | None = None
        self._root: Path | None = None
        self._sessions: dict[SessionKey, _Session] = {}
        self._by_id: dict[str, _Session] = {}
        self._counter = itertools.count(1)
        # Made in start(): a service may be stopped and started again on a new loop.
        self._lock: asyncio.Lock | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._tool_threads: ThreadPoolExecutor | None = None

    @property
    def isolation(self) -> Isolation:
        if self._isolation is None:
            raise SandboxError("the sandbox backend is not started")
        return self._isolation

    async def start(self) -> None:
        if self._root is not None:
            return
        self._lock = asyncio.Lock()
        self._isolation = await asyncio.to_thread(Isolation, self._mode, self.limits)
        if self._isolation.tmpfs:
            await asyncio.to_thread(remove_orphans, Path(tempfile.gettempdir()))
        self._root = await asyncio.to_thread(make_root)
        self._tool_threads = ThreadPoolExecutor(_TOOL_THREADS, "agentmem-sandbox-tool")
        if self.idle_timeout is not None:
            self._reaper = asyncio.create_task(self._reap_forever(self.idle_timeout))

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._root is None:
            return
        async with self._started_lock():
            for key in list(self._sessions):
                await self._release(key)
        if self._root is not None:
            await _offload(remove_tree, self._root)
            self._root = None
        if self._isolation is not None:
            await _offload(self._isolation.close)
        if self._tool_threads is not None:
            # Threads still in a tool (given up on) finish on their own.
            self._tool_threads.shutdown(wait=False, cancel_futures=True)
            self._tool_threads = None

    def _started_lock(self) -> asyncio.Lock:
        if self._lock is None or self._root is None:
            raise SandboxError("the sandbox backend is not started")
        return self._lock

    async def health(self) -> bool:
        """Started, its directory still there and usable, and (with an idle timeout) the
        reaper of idle sessions still running."""
        root, reaper = self._root, self._reaper
        return (
            root is not None
            and root.is_dir()
            and os.access(root, os.W_OK | os.X_OK)
            and (reaper is None or not reaper.done())
        )

    async def info(self) -> ServiceInfo:
        return ServiceInfo(
            remote=False,
            isolation=self.isolation.info(),
            limits=self.limits,
            sandbox_types=sandbox_types(),
            live_sandboxes=self.live_sandboxes,
            idle_timeout_seconds=self.idle_timeout,
        )

    def _make_dir(self, path: Path, uid: int | None, mode: int = 0o700) -> Path:
        path.mkdir(mode=mode)
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    async def connect(
        self, session_id: str, user_id: str | None, sandbox_types: list[str]
    ) -> list[SandboxDescriptor]:
        key = session_key(session_id, user_id)
        if not sandbox_types:
            raise InvalidArgumentError("sandbox_types", "must name at least one type")
        engines = [engine_class(name) for name in sandbox_types]  # fail before creating
        async with self._started_lock():
            session = self._sessions.get(key)
            if session is None:
                assert self._root is not None  # checked by _started_lock()
                session = await asyncio.to_thread(self._new_session, key, self._root)
                self._sessions[key] = session
            session.last_used = time.monotonic()
            by_type = {d.sandbox_type: d for d, _engine in session.sandboxes.values()}
            result = []
            for name, cls in zip(sandbox_types, engines, strict=True):
                if name not in by_type:
                    by_type[name] = self._new_sandbox(session, name, cls)
                result.append(by_type[name])
            return result

    def _new_session(self, key: SessionKey, root: Path) -> _Session:
        isolation = self.isolation
        assert self._tool_threads is not None  # made by start()
        name = f"s{next(self._counter)}"
        uid = isolation.uids.acquire() if isolation.uids is not None else None
        directory = self._make_dir(root / name, None, 0o711)
        session = _Session(
            key=key,
            directory=directory,
            work_dir=directory / "work",
            uid=uid,
            cgroup=None,
            mounted=False,
            blocking=BlockingSlots(self._tool_threads, _TOOL_THREADS_PER_SESSION),
        )
        try:
            if isolation.tmpfs:
                mount_tmpfs(directory, self.limits)
                session.mounted = True
            self._make_dir(session.work_dir, uid)
            if isolation.cgroups is not None:
                session.cgroup = isolation.cgroups.session(name, self.limits)
        except OSError as exc:
            self._remove_session(session)
            raise SandboxUnavailableError(f"cannot create a sandbox session: {exc}") from exc
        return session

    def _remove_session(self, session: _Session) -> None:
        """Kill whatever still runs in the session and delete its cgroup, mount and files."""
        if session.cgroup is not None:
            session.cgroup.remove()
        if session.uid is not None:
            # The session's uid is its own: whatever still runs under it (e.g. a daemon that
            # escaped its process group in process mode) belongs to this session.
            kill_uid_processes(session.uid)
            if self.isolation.uids is not None:
                self.isolation.uids.release(session.uid)
        if session.mounted:
            unmount(session.directory)
        remove_tree(session.directory)

    def _new_sandbox(
        self, session: _Session, name: str, cls: type[SandboxEngine]
    ) -> SandboxDescriptor:
        sandbox_id = uuid.uuid4().hex[:12]
        # The run dir stays the service's: it writes the kernel's connection file and log
        # there, and as root must never do so in a directory where sandboxed code could
        # plant a symlink. Only the subdirectories are the sandbox's.
        run_dir = self._make_dir(session.directory / sandbox_id, None, 0o755)
        for sub in ("home", "tmp", "sockets"):
            self._make_dir(run_dir / sub, session.uid)
        context = SandboxContext(
            sandbox_id=sandbox_id,
            sandbox_type=name,
            session_id=session.key[0],
            user_id=session.key[1],
            work_dir=session.work_dir,
            run_dir=run_dir,
            isolation=self.isolation,
            uid=session.uid,
            cgroup=session.cgroup,
            limits=self.limits,
            blocking=session.blocking,
        )
        descriptor = SandboxDescriptor(
            sandbox_id=sandbox_id,
            sandbox_type=name,
            session_id=session.key[0],
            user_id=session.key[1],
            work_dir=str(session.work_dir),
            tools=cls.tool_names(),
        )
        session.sandboxes[sandbox_id] = (descriptor, cls(context))
        self._by_id[sandbox_id] = session
        return descriptor

    def owner(self, sandbox_id: str) -> SessionKey | None:
        """The (session_id, user_id) of the live sandbox ``sandbox_id``, if there is one."""
        session = self._by_id.get(sandbox_id)
        return session.key if session is not None else None

    @property
    def live_sandboxes(self) -> int:
        return len(self._by_id)

    def sandboxes_of(self, user_id: str | None) -> int:
        """How many live sandboxes ``user_id`` has."""
        return sum(len(s.sandboxes) for key, s in self._sessions.items() if key[1] == user_id)

    def missing(self, session_id: str, user_id: str | None, sandbox_types: list[str]) -> int:
        """How many sandboxes :meth:`connect` with these arguments would create."""
        session = self._sessions.get(session_key(session_id, user_id))
        have = {d.sandbox_type for d, _ in session.sandboxes.values()} if session else set()
        return len(set(sandbox_types) - have)

    async def release(self, session_id: str, user_id: str | None) -> int:
        async with self._started_lock():
            return await self._release(session_key(session_id, user_id))

    async def _release(self, key: SessionKey) -> int:
        """Stop a session's processes and delete its files; returns how many sandboxes."""
        session = self._sessions.pop(key, None)
        if session is None:
            return 0
        for sandbox_id, (_descriptor, engine) in session.sandboxes.items():
            self._by_id.pop(sandbox_id, None)
            engine.closed = True
            try:
                await engine.close()
            except Exception:
                # Keep going: one failing engine must not leave the others running.
                log.exception("closing sandbox %s failed", sandbox_id)
        await _offload(self._remove_session, session)
        return len(session.sandboxes)

    async def invoke(self, sandbox_id: str, tool: str, arguments: dict[str, Any]) -> Any:
        session = self._by_id.get(sandbox_id)
        if session is None:
            raise NotFoundError(f"no live sandbox {sandbox_id!r} (released, reaped or unknown)")
        _descriptor, engine = session.sandboxes[sandbox_id]
        session.active_calls += 1
        try:
            return await engine.invoke(tool, arguments)
        finally:
            session.active_calls -= 1
            session.last_used = time.monotonic()

    async def _reap_forever(self, idle_timeout: float) -> None:
        while True:
            await asyncio.sleep(min(idle_timeout / 2, 30.0))
            try:
                await self.reap_idle(idle_timeout)
            except Exception:
                # A failed round (e.g. a directory that would not go) must not end reaping.
                log.exception("reaping idle sandbox sessions failed")

    async def reap_idle(self, idle_timeout: float) -> int:
        """Release sessions unused for ``idle_timeout`` seconds; returns how many."""
        now = time.monotonic()
        async with self._started_lock():
            idle = [
                key
                for key, s in self._sessions.items()
                if s.active_calls == 0 and now - s.last_used > idle_timeout
            ]
            for key in idle:
                log.info("releasing idle sandbox session %r", key)
                await self._release(key)
        return len(idle)
