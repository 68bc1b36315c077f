"""Finding and killing processes through /proc: what sandboxes left running."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "count_tasks",
    "is_alive",
    "is_zombie",
    "kill_process_group",
    "kill_uid_processes",
    "kill_until_gone",
    "parent_of",
    "process_children",
    "process_ids",
    "uid_of",
]

log = logging.getLogger(__name__)


def process_ids() -> Iterator[int]:
    """The pids of every process visible in /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def uid_of(pid: int) -> int | None:
    """The uid owning process ``pid``; None once it is gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # gone


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie still does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    return True


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its parent, or gone)."""
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
        lambda: [pid for pid in process_ids() if uid_of(pid) == uid and not is_zombie(pid)]
    ):
        log.warning("processes of sandbox uid %d survived repeated SIGKILL", uid)


def kill_process_group(pgid: int) -> None:
    """SIGKILL a process group (a sandboxed command and everything it forked)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def parent_of(pid: int) -> int | None:
    """The parent of process ``pid``; None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def process_children() -> dict[int, list[int]]:
    """Map of pid to its child pids, read from /proc."""
    children: dict[int, list[int]] = {}
    for pid in process_ids():
        ppid = parent_of(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    return children


def count_tasks(uid: int) -> int:
    """The threads of every process of ``uid`` (what ``RLIMIT_NPROC`` counts)."""
    total = 0
    for pid in process_ids():
        if uid_of(pid) != uid:
            continue
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
    return total
