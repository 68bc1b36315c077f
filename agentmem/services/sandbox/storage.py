"""The writable space of a session: a size-capped tmpfs of its own where the host allows.

A session's directory holds everything its sandboxes may write on the host: the work dir,
and each sandbox's home, temporary directory and kernel files. As root, the service mounts
a tmpfs there with ``size=disk_bytes`` and ``nr_inodes=disk_files``, so code that fills it,
or the file tools writing into it, get ``ENOSPC`` ("No space left on device") and the
host's disk stays untouched. The mount is ``nosuid`` and ``nodev``: a device node or a
set-uid program planted there does not work. Releasing the session unmounts it, which
frees its memory at once. A tmpfs lives in memory: what a session's processes write there
counts toward their cgroup's ``memory_bytes`` too.

Without the right to mount (a service that is not root), sessions are plain directories
and only ``file_size_bytes`` bounds what they write; :func:`tmpfs_problem` says why.

A service killed before it could stop (SIGKILL) leaves its mounts behind, and their memory
with them: :func:`remove_orphans`, run as each backend starts, unmounts those of services
that no longer run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentmem.services.sandbox.models import SandboxLimits
from agentmem.services.sandbox.processes import is_alive

__all__ = [
    "make_root",
    "mount_tmpfs",
    "mounts",
    "remove_orphans",
    "remove_tree",
    "tmpfs_problem",
    "unmount",
]

log = logging.getLogger(__name__)

# A backend's directory: the pid of its service, then a random part.
_ROOT = re.compile(r"agentmem-sbx-(\d+)-")

_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, path: Path) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def mount_tmpfs(path: Path, limits: SandboxLimits) -> None:
    """Mount a tmpfs of ``limits.disk_bytes`` and ``limits.disk_files`` at ``path``.

    Its root is mode 0711 like the session directories: other uids reach only what is
    theirs inside.
    """
    options = f"size={limits.disk_bytes},nr_inodes={limits.disk_files},mode=0711"
    flags = _MS_NOSUID | _MS_NODEV
    _check(_libc.mount(b"tmpfs", bytes(path), b"tmpfs", flags, options.encode()), path)


def unmount(path: Path) -> None:
    """Detach the tmpfs at ``path``; its memory is freed once no process holds it."""
    try:
        _check(_libc.umount2(bytes(path), _MNT_DETACH), path)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: nothing is mounted there
            log.warning("could not unmount %s: %s", path, exc)


@functools.cache
def tmpfs_problem() -> str | None:
    """Why sessions cannot get a tmpfs of their own here, or ``None`` when they can.

    Mounts and unmounts one small tmpfs, once per process: being root is not enough in a
    container without ``CAP_SYS_ADMIN``.
    """
    if not sys.platform.startswith("linux"):
        return f"a tmpfs per session needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "only a service running as root can mount a tmpfs per session"
    probe = Path(tempfile.mkdtemp(prefix="agentmem-tmpfs-probe-"))
    try:
        mount_tmpfs(probe, SandboxLimits(disk_bytes=1 << 20, disk_files=64))
    except OSError as exc:
        return f"mounting a tmpfs was refused: {exc.strerror}"
    else:
        unmount(probe)
    finally:
        probe.rmdir()
    return None


def make_root() -> Path:
    """A new directory for the sessions of one backend, in the temp directory."""
    root = Path(tempfile.mkdtemp(prefix=f"agentmem-sbx-{os.getpid()}-"))
    # Other uids must traverse it to reach their own session directory, nothing more.
    root.chmod(0o711)
    return root


def mounts() -> list[tuple[Path, str, str, str]]:
    """(mount point, root inside its filesystem, type, options) of each mount this process
    sees, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        # The kernel writes a space in a path as \040, and so on.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
        found.append((Path(point), fields[3], tail[0], tail[-1]))
    return found


def remove_orphans(tempdir: Path) -> None:
    """Unmount the session mounts that services no longer running left in ``tempdir``.

    Their directories are deleted if that leaves them empty; anything else stays, such as
    the files of a service this one cannot see (another pid namespace).
    """
    points = [point for point, _root, _type, _options in mounts()]
    for root in tempdir.iterdir():
        found = _ROOT.match(root.name)
        if found is None or is_alive(int(found[1])):
            continue
        mounted = [point for point in points if point.parent == root]
        for point in mounted:
            unmount(point)
        for directory in [*mounted, root]:
            with contextlib.suppress(OSError):  # not empty: more than a session mount left
                directory.rmdir()


def remove_tree(path: Path) -> None:
    """Delete a sandbox directory even if sandboxed code removed its own permissions."""

    def retry_writable(func: Any, target: str, exc_info: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
        # Root is not stopped by permissions, and chmod would follow a symlink that
        # sandboxed code swapped in: only a non-root service retries after a chmod.
        if os.geteuid() != 0:
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
