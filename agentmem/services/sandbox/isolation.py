"""How sandboxed processes are started: bubblewrap namespaces or a plain subprocess.

Every sandboxed process (an IPython kernel, a shell command) is started as::

    [python -I -S -c <_LAUNCHER> <join the cgroup> bwrap <namespaces and mounts> --]
        python -I -S -c <_LAUNCHER> <config> <command...>

The launcher is a few lines of Python. Where sessions get a cgroup (see :mod:`.cgroups`),
it first makes its own process join the session's cgroup, on the host, before bubblewrap
hides the cgroup files: everything the command starts is then counted there. Then, *inside*
the sandbox just before the real command, it sets the rlimits, drops to the sandbox's uid
when the service runs as root, forbids gaining privileges (``PR_SET_NO_NEW_PRIVS``), asks to
be killed when its parent dies (``PR_SET_PDEATHSIG``, after the uid change that would reset
it) and ``exec``\\s the command. Without bubblewrap one launcher does both.

Why the launcher drops the uid instead of bubblewrap's ``--uid``: ``RLIMIT_NPROC`` (the
fork-bomb limit) is counted per *real* uid and is never enforced for root, and a user
namespace created by root still maps to root outside. So as root, bubblewrap runs
privileged without a user namespace and the launcher switches to a uid of its own for each
session (see :class:`UidPool`). Without root, bubblewrap creates a user namespace and the
launcher sets the rlimits after it exists, which makes ``RLIMIT_NPROC`` count only the
processes of that sandbox.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import shutil
import site
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from agentmem.errors import SandboxUnavailableError
from agentmem.services.sandbox.cgroups import CgroupError, CgroupTree, SessionCgroup
from agentmem.services.sandbox.models import IsolationInfo, SandboxLimits
from agentmem.services.sandbox.processes import count_tasks, process_ids, uid_of
from agentmem.services.sandbox.storage import tmpfs_problem

__all__ = ["Isolation", "IsolationMode", "UidPool", "bubblewrap_problem"]

log = logging.getLogger(__name__)

IsolationMode = Literal["auto", "bubblewrap", "process"]

_LAUNCHER = """
import ctypes, json, os, resource, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
cfg = json.loads(sys.argv[1])
for procs in cfg.get("cgroup", ()):
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
if "limits" in cfg:
    for name, value in cfg["limits"].items():
        resource.setrlimit(getattr(resource, name), tuple(value))
    libc.prctl(38, 1, 0, 0, 0)
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    os.umask(0o022)
os.execv(sys.argv[2], sys.argv[2:])
"""
# (Imports come first: after the uid change the interpreter's files may be unreadable.)
# Session limits, as the names of SandboxLimits, that a cgroup and a tmpfs enforce.
_CGROUP_LIMITS = ("memory_bytes", "processes", "cpus")
_TMPFS_LIMITS = ("disk_bytes", "disk_files")

# Read-only system directories visible in a bubblewrap sandbox (those that exist).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def _is_root() -> bool:
    return os.geteuid() == 0


@functools.cache
def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def _bwrap_supports(flag: str) -> bool:
    path = _bwrap_path()
    if path is None:
        return False
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    return flag in out.stdout + out.stderr


def _namespace_flags() -> list[str]:
    flags = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if not _is_root():
        flags.append("--unshare-user")
        if _bwrap_supports("--disable-userns"):
            flags.append("--disable-userns")
    return flags


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate sandboxes here, or ``None`` when it can.

    Runs ``bwrap`` once per process with the namespaces sandboxes use, because an installed
    bwrap can still be refused by the host (no user namespaces, seccomp, AppArmor).
    """
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux, this is {sys.platform}"
    path = _bwrap_path()
    if path is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    probe = [
        path,
        "--die-with-parent",
        *_namespace_flags(),
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--",
        "/bin/sh",
        "-c",
        "exit 0",
    ]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    if done.returncode != 0:
        return f"bwrap is refused by this host: {done.stderr.strip() or done.returncode}"
    return None


def _world_accessible(path: str) -> bool:
    """Whether a uid that is neither owner nor group member can reach ``path``."""
    current = Path(path).resolve()
    for part in [current, *current.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(current.stat().st_mode & stat.S_IROTH)


@functools.cache
def _python_paths() -> tuple[str, ...]:
    """Directories the sandboxed Python interpreter and ipykernel need (read-only)."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        str(Path(sys.executable).resolve().parent.parent),
    }
    candidates.update(site.getsitepackages())
    # Only package directories from sys.path: it also holds the caller's project
    # directory, which must not become visible to sandboxed code.
    candidates.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    existing = sorted({str(Path(p).resolve()) for p in candidates if p and Path(p).is_dir()})
    # Drop directories already inside another one of the list.
    return tuple(
        p for p in existing if not any(p != q and p.startswith(q + os.sep) for q in existing)
    )


class UidPool:
    """Hands out uids that no process uses, one per session, when the service is root.

    Each session gets its own uid so that ``RLIMIT_NPROC`` counts that session alone and,
    without bubblewrap, sessions cannot read each other's files. The range is chosen inside
    the uids this (possibly containerised) host maps.
    """

    _lock = threading.Lock()
    _taken: ClassVar[set[int]] = set()  # shared by every service of this process

    def __init__(self) -> None:
        self._low, self._high = self._range()

    @staticmethod
    def _range() -> tuple[int, int]:
        top = 65536
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/uid_map").read_text().splitlines():
                inside, _outside, count = (int(x) for x in line.split())
                top = max(top, inside + count)
        if top > 2_000_000_000:
            return 1_900_000_000, 1_999_999_999
        return 40_000, 60_000

    def acquire(self) -> int:
        in_use = {uid_of(pid) for pid in process_ids()}
        with self._lock:
            for _ in range(1000):
                uid = random.randint(self._low, self._high)
                if uid not in self._taken and uid not in in_use:
                    self._taken.add(uid)
                    return uid
        raise SandboxUnavailableError("no free uid left for a new sandbox session")

    def release(self, uid: int) -> None:
        with self._lock:
            self._taken.discard(uid)


class Isolation:
    """Builds the command lines and environments of sandboxed processes.

    ``mode="auto"`` uses bubblewrap when it works on this host and otherwise falls back to
    a plain subprocess, logging a warning (and listing it in :meth:`info`);
    ``"bubblewrap"`` raises :class:`SandboxUnavailableError` instead of falling back;
    ``"process"`` never uses bubblewrap. Either way, sessions get a cgroup (:attr:`cgroups`)
    and a tmpfs of their own (:attr:`tmpfs`) where the host allows it; :meth:`close`
    deletes the cgroup of the whole backend.
    """

    def __init__(self, mode: IsolationMode, limits: SandboxLimits) -> None:
        self.limits = limits
        self.warnings: list[str] = []
        problem = None if mode == "process" else bubblewrap_problem()
        if mode == "bubblewrap" and problem is not None:
            raise SandboxUnavailableError(problem)
        self.bubblewrap = mode != "process" and problem is None
        if mode == "auto" and problem is not None:
            self.warnings.append(f"sandboxes are plain subprocesses without namespaces: {problem}")
            log.warning("%s", self.warnings[-1])
        self.cgroups: CgroupTree | None = None
        try:
            self.cgroups = CgroupTree.create()
        except CgroupError as exc:
            self.warnings.append(
                "memory_bytes, processes and cpus bound each process alone, not a session's "
                f"processes together, and cpus is not enforced: no cgroup per session ({exc})"
            )
        disk_problem = tmpfs_problem()
        self.tmpfs = disk_problem is None
        if disk_problem is not None:
            self.warnings.append(
                "disk_bytes and disk_files are not enforced, only file_size_bytes per file: "
                f"no tmpfs per session ({disk_problem})"
            )
        self.uids = UidPool() if _is_root() else None
        # Without bubblewrap, a uid of our own only helps if it can run the interpreter.
        self.kernel_drops_uid = self.uids is not None and (
            self.bubblewrap or all(_world_accessible(p) for p in _python_paths())
        )
        if self.uids is not None and not self.kernel_drops_uid:
            self.warnings.append(
                "the Python interpreter is not readable by other uids, so IPython kernels run "
                "as root: only the session's cgroup, if any, bounds their processes"
            )
        if not self.bubblewrap:
            self.warnings.append(
                "without bubblewrap, sandboxed code can use the network, read the host's "
                "files its uid can read and see other processes"
            )

    def close(self) -> None:
        """Delete the backend's cgroup; the sessions' own are gone with the sessions."""
        if self.cgroups is not None:
            self.cgroups.close()

    def info(self) -> IsolationInfo:
        enforced = ["cpu_seconds", "memory_bytes", "file_size_bytes", "open_files"]
        enforced += ["timeout_seconds", "max_output_bytes"]
        session: list[str] = []
        uid_per_session = self.uids is not None and self.kernel_drops_uid
        if self.cgroups is not None:
            session += _CGROUP_LIMITS
        elif uid_per_session:
            session.append("processes")  # RLIMIT_NPROC counts the session's own uid
        if self.tmpfs:
            session += _TMPFS_LIMITS
        if self.uids is None or self.kernel_drops_uid or self.cgroups is not None:
            enforced.append("processes")
        if self.bubblewrap:
            enforced.append("tmp_size_bytes")
        enforced += [name for name in session if name not in enforced]
        namespaces = ["mount", "pid", "net", "ipc", "uts", "cgroup"]
        if self.bubblewrap and not _is_root():
            namespaces.append("user")
        return IsolationInfo(
            mode="bubblewrap" if self.bubblewrap else "process",
            namespaces=namespaces if self.bubblewrap else [],
            network=not self.bubblewrap,
            read_only_system=self.bubblewrap,
            private_tmp=self.bubblewrap,
            separate_pids=self.bubblewrap,
            session_uids=self.uids is not None,
            kernel_session_uids=self.kernel_drops_uid,
            enforced_limits=enforced,
            session_limits=session,
            cgroup=self.cgroups.version if self.cgroups is not None else None,
            warnings=list(self.warnings),
        )

    def environment(self, home: Path, tmp: Path) -> dict[str, str]:
        """The whole environment of a sandboxed process: nothing leaks from the service's."""
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": "/tmp" if self.bubblewrap else str(tmp),
            "IPYTHONDIR": str(home / ".ipython"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "SHELL": shutil.which("bash", path="/usr/bin:/bin") or "/bin/sh",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
        }

    def _rlimits(self, uid: int | None) -> dict[str, list[int]]:
        lim = self.limits
        nproc = lim.processes
        if uid is None and not self.bubblewrap and not _is_root():
            # Without a uid or a user namespace of its own, RLIMIT_NPROC counts every
            # process of the service's user, so allow those that already exist.
            nproc += count_tasks(os.getuid())
        return {
            # The soft CPU limit sends SIGXCPU; the hard one a second later SIGKILL.
            "RLIMIT_CPU": [lim.cpu_seconds, lim.cpu_seconds + 1],
            "RLIMIT_AS": [lim.memory_bytes, lim.memory_bytes],
            "RLIMIT_NPROC": [nproc, nproc],
            "RLIMIT_FSIZE": [lim.file_size_bytes, lim.file_size_bytes],
            "RLIMIT_NOFILE": [lim.open_files, lim.open_files],
            "RLIMIT_CORE": [0, 0],
        }

    def command(
        self,
        argv: Sequence[str],
        *,
        work_dir: Path,
        writable: Sequence[Path],
        uid: int | None,
        cgroup: SessionCgroup | None,
    ) -> list[str]:
        """The full command line running ``argv`` sandboxed, with cwd ``work_dir``.

        ``writable`` are the only host directories the process may write (besides a
        private /tmp under bubblewrap); ``uid`` is the uid to drop to, when root; the
        process and all it starts join ``cgroup``.
        """
        joins = {"cgroup": cgroup.procs_files} if cgroup is not None else {}
        config = {"limits": self._rlimits(uid), "uid": uid}
        if not self.bubblewrap:
            return _launch(joins | config, argv)
        inner = _launch(config, argv)
        bwrap = _bwrap_path()
        assert bwrap is not None  # checked by bubblewrap_problem()
        args = [bwrap, "--die-with-parent", *_namespace_flags(), "--hostname", "sandbox"]
        created: set[str] = {"/"}

        def ensure_parents(path: str) -> None:
            # bwrap would create missing parents with mode 0700, unusable for the uid.
            parent = str(Path(path).parent)
            chain: list[str] = []
            while parent not in created:
                chain.append(parent)
                parent = str(Path(parent).parent)
            for directory in reversed(chain):
                args.extend(["--perms", "0755", "--dir", directory])
                created.add(directory)

        bound: list[str] = []
        for directory in _SYSTEM_DIRS:
            if os.path.islink(directory):
                args.extend(["--symlink", os.readlink(directory), directory])
            elif os.path.isdir(directory):
                args.extend(["--ro-bind", directory, directory])
                bound.append(directory)
            created.add(directory)
        # The private /tmp comes before the Python directories: bwrap applies mounts in
        # order, and an interpreter or virtualenv that lives under /tmp must stay visible.
        tmp_size = ["--size", str(self.limits.tmp_size_bytes)] if _bwrap_supports("--size") else []
        args += ["--dev", "/dev", "--proc", "/proc"]
        args += ["--perms", "1777", *tmp_size, "--tmpfs", "/tmp"]
        args += ["--perms", "1777", *tmp_size, "--tmpfs", "/dev/shm"]
        created.update({"/tmp", "/dev", "/proc"})
        for directory in _python_paths():
            if any(directory == b or directory.startswith(b + os.sep) for b in bound):
                continue
            ensure_parents(directory)
            args.extend(["--ro-bind", directory, directory])
            created.add(directory)
        for path in map(str, writable):
            ensure_parents(path)
            args.extend(["--bind", path, path])
            created.add(path)
        args += ["--chdir", str(work_dir), "--", *inner]
        # bwrap hides the host's cgroup files, so the cgroup is joined before it starts.
        return _launch(joins, args) if joins else args


def _launch(config: dict[str, Any], argv: Sequence[str]) -> list[str]:
    """``argv`` run by the launcher with ``config``."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config), *argv]
