"""How sandboxed processes are started: bubblewrap namespaces or a plain subprocess.

Every sandboxed process (an IPython kernel, a shell command) is started as::

    [bwrap <namespaces and mounts> --] python -I -S -c <_LAUNCHER> <config> <command...>

The launcher is a few lines of Python that run *inside* the sandbox just before the real
command: it sets the rlimits, drops to the sandbox's uid when the service runs as root,
forbids gaining privileges (``PR_SET_NO_NEW_PRIVS``), asks to be killed when its parent
dies (``PR_SET_PDEATHSIG``, after the uid change that would reset it) and ``exec``\\s the
command.

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
import signal
import site
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from agentmem.errors import SandboxUnavailableError
from agentmem.services.sandbox.models import IsolationInfo, SandboxLimits

__all__ = [
    "Isolation",
    "IsolationMode",
    "UidPool",
    "bubblewrap_problem",
    "kill_process_group",
    "kill_uid_processes",
    "kill_until_gone",
    "process_children",
    "process_ids",
    "remove_tree",
]

log = logging.getLogger(__name__)

IsolationMode = Literal["auto", "bubblewrap", "process"]

_LAUNCHER = """
import ctypes, json, os, resource, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
cfg = json.loads(sys.argv[1])
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
        in_use = {_uid_of(pid) for pid in process_ids()}
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


def process_ids() -> Iterator[int]:
    """The pids of every process visible in /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # gone


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True  # gone


def kill_until_gone(victims: Callable[[], list[int]]) -> bool:
    """SIGKILL the processes ``victims()`` lists until it lists none, repeating while a
    fork bomb keeps spawning; False when some still lived after 50 rounds."""
    for _ in range(50):
        pids = victims()
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return False


def kill_uid_processes(uid: int) -> None:
    """SIGKILL every process of ``uid``, repeating while a fork bomb keeps spawning.

    Zombies are skipped: they are dead already and wait for a parent (possibly a
    container's init that never reaps) to collect them.
    """
    if not kill_until_gone(
        lambda: [pid for pid in process_ids() if _uid_of(pid) == uid and not _is_zombie(pid)]
    ):
        log.warning("processes of sandbox uid %d survived repeated SIGKILL", uid)


def kill_process_group(pgid: int) -> None:
    """SIGKILL a process group (a sandboxed command and everything it forked)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def process_children() -> dict[int, list[int]]:
    """Map of pid to its child pids, read from /proc."""
    children: dict[int, list[int]] = {}
    for pid in process_ids():
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(f"/proc/{pid}/stat").read_text()
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(pid)
    return children


def _count_tasks(uid: int) -> int:
    total = 0
    for pid in process_ids():
        if _uid_of(pid) != uid:
            continue
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
    return total


def remove_tree(path: Path) -> None:
    """Delete a sandbox directory even if sandboxed code removed its own permissions."""

    def retry_writable(func: Any, target: str, exc_info: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
        # Root is not stopped by permissions, and chmod would follow a symlink that
        # sandboxed code swapped in: only a non-root service retries after a chmod.
        if not _is_root():
            try:
                os.chmod(os.path.dirname(target), 0o700)
                os.chmod(target, 0o700)
                func(target)
                return
            except FileNotFoundError:
                return
            except OSError as retry_error:
                error = retry_error
        log.warning("could not delete %s: %s", target, error)

    if path.exists():
        # ``onerror`` is deprecated from 3.12 on, but ``onexc`` does not exist in 3.11.
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry_writable)
        else:
            shutil.rmtree(path, onerror=retry_writable)


class Isolation:
    """Builds the command lines and environments of sandboxed processes.

    ``mode="auto"`` uses bubblewrap when it works on this host and otherwise falls back to
    a plain subprocess, logging a warning (and listing it in :meth:`info`);
    ``"bubblewrap"`` raises :class:`SandboxUnavailableError` instead of falling back;
    ``"process"`` never uses bubblewrap.
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
        self.uids = UidPool() if _is_root() else None
        # Without bubblewrap, a uid of our own only helps if it can run the interpreter.
        self.kernel_drops_uid = self.uids is not None and (
            self.bubblewrap or all(_world_accessible(p) for p in _python_paths())
        )
        if self.uids is not None and not self.kernel_drops_uid:
            self.warnings.append(
                "the Python interpreter is not readable by other uids, so IPython kernels run "
                "as root: the process limit does not apply to them"
            )
        if not self.bubblewrap:
            self.warnings.append(
                "without bubblewrap, sandboxed code can use the network, read the host's "
                "files its uid can read and see other processes"
            )

    def info(self) -> IsolationInfo:
        enforced = ["cpu_seconds", "memory_bytes", "file_size_bytes", "open_files"]
        enforced += ["timeout_seconds", "max_output_bytes"]
        if self.uids is None or self.kernel_drops_uid:
            enforced.append("processes")
        if self.bubblewrap:
            enforced.append("tmp_size_bytes")
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
            nproc += _count_tasks(os.getuid())
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
    ) -> list[str]:
        """The full command line running ``argv`` sandboxed, with cwd ``work_dir``.

        ``writable`` are the only host directories the process may write (besides a
        private /tmp under bubblewrap); ``uid`` is the uid to drop to, when root.
        """
        config = json.dumps({"limits": self._rlimits(uid), "uid": uid})
        inner = [sys.executable, "-I", "-S", "-c", _LAUNCHER, config, *argv]
        if not self.bubblewrap:
            return inner
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
        return args
