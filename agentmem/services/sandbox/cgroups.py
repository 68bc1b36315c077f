"""Control groups: memory, CPU and process limits for a session's processes together.

Rlimits bound each process on its own, so three processes of a session may each use its
whole ``memory_bytes``. A cgroup per session bounds them together: every sandboxed process
joins its session's group before it starts the command (see :mod:`.isolation`), and its
children inherit the group.

The groups live below the service's own cgroup, so whatever limits the host put on the
service still hold for its sandboxes: ``<own cgroup>/agentmem-<pid>-<random>/<session>``.
Either cgroup v1 with the ``memory``, ``pids`` and ``cpu`` controllers each mounted as a
hierarchy of its own, or cgroup v2 with the three enabled for the service's cgroup's
children. Creating them needs write access to the service's cgroup (root, or a delegated
cgroup); :meth:`CgroupTree.create` says why when the host does not allow it, and deletes
the groups that services killed before they could stop left behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentmem.services.sandbox.models import SandboxLimits
from agentmem.services.sandbox.processes import is_alive, is_zombie, kill_until_gone
from agentmem.services.sandbox.storage import mounts

__all__ = ["CgroupError", "CgroupTree", "SessionCgroup"]

log = logging.getLogger(__name__)

CgroupVersion = Literal["v1", "v2"]

_CONTROLLERS = ("memory", "pids", "cpu")
# The group of one backend: the pid of its service, then a random part.
_GROUP = re.compile(r"agentmem-(\d+)-[0-9a-f]+")
# The CPU quota is granted per period; 100 ms is the kernel's default period.
_CPU_PERIOD_US = 100_000
# How long removing a group waits for the kernel to see its killed processes gone.
_REMOVE_SECONDS = 5.0


class CgroupError(Exception):
    """Why per-session cgroups cannot be used on this host."""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _own_paths() -> dict[str, str]:
    """The service's cgroup per controller ("" for the v2 hierarchy), from /proc/self."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _inside(point: Path, root: str, path: str) -> Path:
    """The directory of cgroup ``path`` in a hierarchy mounted at ``point`` from ``root``."""
    if root != "/" and not (path == root or path.startswith(root + "/")):
        raise CgroupError(f"the service's cgroup {path} is not below the mount at {point}")
    return point / os.path.relpath(path, root)


def _find() -> tuple[CgroupVersion, dict[str, Path]]:
    """The version and, per controller, the service's own cgroup directory."""
    own = _own_paths()
    cgroup_mounts = [m for m in mounts() if m[2] in ("cgroup", "cgroup2")]
    v1 = {}
    for point, root, fstype, options in cgroup_mounts:
        for name in _CONTROLLERS:
            if fstype == "cgroup" and name in options.split(",") and name in own:
                v1[name] = _inside(point, root, own[name])
    if len(v1) == len(_CONTROLLERS):
        return "v1", v1
    unified = [(point, root) for point, root, fstype, _ in cgroup_mounts if fstype == "cgroup2"]
    if not unified or "" not in own:
        missing = ", ".join(n for n in _CONTROLLERS if n not in v1)
        raise CgroupError(f"no cgroup v1 hierarchy for {missing} and no cgroup v2 mount")
    directory = _inside(*unified[0], own[""])
    available = set((directory / "cgroup.controllers").read_text().split())
    missing = ", ".join(n for n in _CONTROLLERS if n not in available)
    if missing:
        raise CgroupError(f"cgroup v2 does not offer {missing} to the service's cgroup")
    return "v2", dict.fromkeys(_CONTROLLERS, directory)


@dataclass(frozen=True)
class SessionCgroup:
    """The cgroup of one session: a directory per hierarchy (one on v2)."""

    version: CgroupVersion
    directories: tuple[Path, ...]

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid into to join the group, in every hierarchy."""
        return [str(d / "cgroup.procs") for d in self.directories]

    def pids(self) -> list[int]:
        """The live processes of the group (the first hierarchy holds them all)."""
        try:
            text = (self.directories[0] / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [pid for pid in map(int, text.split()) if not is_zombie(pid)]

    def kill(self) -> None:
        """SIGKILL every process of the group, repeating while a fork bomb keeps forking."""
        kill_file = self.directories[0] / "cgroup.kill"
        if self.version == "v2" and kill_file.exists():
            _write(kill_file, "1")
        if not kill_until_gone(self.pids):
            log.warning("processes of cgroup %s survived repeated SIGKILL", self.directories[0])

    def remove(self) -> None:
        """Kill what is left in the group and delete its directories."""
        self.kill()
        for directory in self.directories:
            deadline = time.monotonic() + _REMOVE_SECONDS
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # The kernel may still count processes that were just killed.
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("could not delete cgroup %s: %s", directory, exc)
                        break
                    time.sleep(0.02)


class CgroupTree:
    """The cgroups of one sandbox backend: a group of its own below the service's cgroup,
    holding a group per session. :meth:`create` raises :class:`CgroupError` with the
    reason when the host does not allow it."""

    def __init__(self, version: CgroupVersion, parents: dict[str, Path]) -> None:
        self.version: CgroupVersion = version
        self._parents = parents

    @classmethod
    def create(cls) -> CgroupTree:
        try:
            version, own = _find()
        except (OSError, ValueError) as exc:
            raise CgroupError(f"the cgroups of this process cannot be read: {exc}") from exc
        for directory in dict.fromkeys(own.values()):
            _remove_orphans(directory)
        name = f"agentmem-{os.getpid()}-{secrets.token_hex(4)}"
        parents = {controller: directory / name for controller, directory in own.items()}
        made: list[Path] = []
        try:
            if version == "v2":
                cls._delegate(own["memory"])
            for directory in dict.fromkeys(parents.values()):
                directory.mkdir(mode=0o755)
                made.append(directory)
            if version == "v2":
                _write(parents["memory"] / "cgroup.subtree_control", _enable())
        except OSError as exc:
            for directory in reversed(made):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise CgroupError(f"cannot create a cgroup below {own['memory']}: {exc}") from exc
        return cls(version, parents)

    @staticmethod
    def _delegate(own: Path) -> None:
        """On v2, make the controllers available to the children of the service's cgroup.

        The kernel refuses this for a cgroup that holds processes, unless the host did it
        already (a delegated cgroup); then the controllers are listed there.
        """
        enabled = set((own / "cgroup.subtree_control").read_text().split())
        if not set(_CONTROLLERS) <= enabled:
            _write(own / "cgroup.subtree_control", _enable())

    def session(self, name: str, limits: SandboxLimits) -> SessionCgroup:
        """A new group ``name`` bounding its processes together by ``limits``."""
        group = SessionCgroup(
            self.version, tuple(dict.fromkeys(p / name for p in self._parents.values()))
        )
        try:
            for directory in group.directories:
                directory.mkdir(mode=0o755)
            self._write_limits(name, limits)
        except OSError:
            group.remove()
            raise
        return group

    def _write_limits(self, name: str, limits: SandboxLimits) -> None:
        memory, pids, cpu = (self._parents[c] / name for c in _CONTROLLERS)
        quota = max(1000, round(limits.cpus * _CPU_PERIOD_US))  # the kernel's minimum: 1 ms
        if self.version == "v1":
            _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            # With swap accounting on, memory plus swap gets the same bound: no swap at all.
            if (memory / "memory.memsw.limit_in_bytes").exists():
                _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            _write(pids / "pids.max", str(limits.processes))
            _write(cpu / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(quota))
        else:
            _write(memory / "memory.max", str(limits.memory_bytes))
            if (memory / "memory.swap.max").exists():
                _write(memory / "memory.swap.max", "0")
            _write(pids / "pids.max", str(limits.processes))
            _write(cpu / "cpu.max", f"{quota} {_CPU_PERIOD_US}")

    def close(self) -> None:
        """Delete the backend's group (its sessions' groups must be gone already)."""
        for directory in dict.fromkeys(self._parents.values()):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not delete cgroup %s: %s", directory, exc)


def _remove_orphans(directory: Path) -> None:
    """Delete the groups that services no longer running left in ``directory`` (killed
    before they could stop); a group still holding processes stays."""
    for group in directory.glob("agentmem-*"):
        found = _GROUP.fullmatch(group.name)
        if found is None or is_alive(int(found[1])):
            continue
        for child in [*(c for c in group.iterdir() if c.is_dir()), group]:
            with contextlib.suppress(OSError):  # processes left in it
                child.rmdir()


def _enable() -> str:
    return " ".join(f"+{name}" for name in _CONTROLLERS)
