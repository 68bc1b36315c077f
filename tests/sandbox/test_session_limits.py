"""Limits that bound a session's processes and files together, in both isolation modes.

Each test runs code that stays within every per-process limit and goes beyond the
session's: several processes that together use more memory or CPU than the session may,
and files that together fill more space than the session has.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmem.services.sandbox import FilesystemSandbox, SandboxError, cgroups
from agentmem.services.sandbox import isolation as isolation_module
from agentmem.services.sandbox.cgroups import CgroupError, CgroupTree
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import LIMITS, requires_bwrap

_MiB = 1024 * 1024
TIGHT = LIMITS.model_copy(
    update={"memory_bytes": 512 * _MiB, "cpus": 0.25, "disk_bytes": 8 * _MiB, "disk_files": 300}
)


@pytest.fixture(
    scope="module",
    params=[pytest.param("bubblewrap", marks=requires_bwrap), "process"],
)
async def tight_service(request: pytest.FixtureRequest) -> AsyncIterator[SandboxService]:
    async with SandboxService(isolation=request.param, limits=TIGHT) as svc:
        yield svc


@pytest.fixture
async def sandbox(tight_service: SandboxService) -> AsyncIterator[FilesystemSandbox]:
    sid = f"limits-{uuid.uuid4().hex[:8]}"
    [sandbox] = await tight_service.connect(sid, "mallory", ["filesystem"])
    assert isinstance(sandbox, FilesystemSandbox)
    yield sandbox
    assert await tight_service.health()
    await tight_service.release(sid, "mallory")


async def _require(service: SandboxService, *names: str) -> None:
    info = await service.info()
    assert info.isolation is not None
    missing = [name for name in names if name not in info.isolation.session_limits]
    if missing:
        pytest.skip(f"{missing} bound each process alone here: {info.isolation.warnings}")


async def test_memory_bounds_the_processes_of_a_session_together(
    sandbox: FilesystemSandbox, tight_service: SandboxService
) -> None:
    await _require(tight_service, "memory_bytes")
    # Each holds 200 MiB, well within its own 512 MiB; the three together hold more.
    hold = 'python3 -c \'import time; block = b"x" * (200 << 20); time.sleep(3); print("held")\''
    shell = await sandbox.arun_shell_command(f"for i in 1 2 3; do {hold} & done; wait")
    assert shell.stdout.count("held") < 3 and "Killed" in shell.stderr, shell


async def test_cpus_bound_the_processes_of_a_session_together(
    sandbox: FilesystemSandbox, tight_service: SandboxService
) -> None:
    await _require(tight_service, "cpus")
    # Three processes spin for 2 s each: up to 4 s of CPU on two idle cores, but a
    # quarter of a core for the session allows about 0.5 s.
    burn = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        end = time.time() + 2\n"
        "        while time.time() < end: pass\n"
        "        os._exit(0)\n"
        "for _ in range(3): os.wait()\n"
        "t = os.times(); print(t.children_user + t.children_system)"
    )
    shell = await sandbox.arun_shell_command(f"python3 -c '{burn}'")
    assert shell.returncode == 0, shell
    assert float(shell.stdout) < 1.2, shell


async def test_disk_bytes_bound_the_files_of_a_session(
    sandbox: FilesystemSandbox, tight_service: SandboxService
) -> None:
    await _require(tight_service, "disk_bytes")
    # 16 MiB is within file_size_bytes, but not within the session's 8 MiB.
    shell = await sandbox.arun_shell_command("head -c 16M /dev/zero > big; stat -c %s big")
    assert "No space left on device" in shell.stderr, shell
    assert int(shell.stdout) <= 8 * _MiB
    with pytest.raises(SandboxError, match="No space left on device"):
        await sandbox.awrite_file("more.txt", "x" * _MiB)
    # Another session has space of its own, and freed space can be used again.
    sid = f"{sandbox.session_id}-other"
    [other] = await tight_service.connect(sid, "mallory")
    done = await other.arun_shell_command("head -c 4M /dev/zero > f && echo ok")  # type: ignore[attr-defined]
    assert done.stdout == "ok\n", done
    await tight_service.release(sid, "mallory")
    await sandbox.arun_shell_command("rm big")
    await sandbox.awrite_file("more.txt", "x" * _MiB)


async def test_disk_files_bound_the_files_of_a_session(
    sandbox: FilesystemSandbox, tight_service: SandboxService
) -> None:
    await _require(tight_service, "disk_files")
    shell = await sandbox.arun_shell_command(
        "for i in $(seq 1000); do touch f$i || break; done; ls | wc -l"
    )
    assert "No space left on device" in shell.stderr, shell
    assert int(shell.stdout) < 300
    with pytest.raises(SandboxError, match="No space left on device"):
        await sandbox.acreate_directory("one-more")
    with pytest.raises(SandboxError, match="No space left on device"):
        await sandbox.awrite_file("one-more.txt", "x")


async def test_info_says_which_limits_bound_a_session(tight_service: SandboxService) -> None:
    info = await tight_service.info()
    isolation = info.isolation
    assert isolation is not None
    if isolation.cgroup is not None:
        assert {"memory_bytes", "processes", "cpus"} <= set(isolation.session_limits)
    else:
        assert any("bound each process alone" in w for w in isolation.warnings)
    if "disk_bytes" not in isolation.session_limits:
        assert any("disk_bytes and disk_files are not enforced" in w for w in isolation.warnings)
    assert set(isolation.session_limits) <= set(isolation.enforced_limits)


async def test_without_cgroups_or_mounts_info_says_limits_are_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse() -> CgroupTree:
        raise CgroupError("not allowed on this host")

    monkeypatch.setattr(CgroupTree, "create", staticmethod(refuse))
    monkeypatch.setattr(isolation_module, "tmpfs_problem", lambda: "not root")
    async with SandboxService(isolation="process", limits=LIMITS) as service:
        info = await service.info()
        assert info.isolation is not None and info.isolation.cgroup is None
        limits = info.isolation.session_limits
        assert not {"memory_bytes", "cpus", "disk_bytes", "disk_files"} & set(limits)
        assert "cpus" not in info.isolation.enforced_limits
        warnings = " ".join(info.isolation.warnings)
        assert "bound each process alone" in warnings and "not allowed on this host" in warnings
        assert "disk_bytes and disk_files are not enforced" in warnings
        [sandbox] = await service.connect("per-process")
        shell = await sandbox.arun_shell_command("echo still works")  # type: ignore[attr-defined]
        assert shell.stdout == "still works\n"


def test_cgroup_v2_files_are_written_as_the_kernel_reads_them(
    monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    # The test hosts have cgroup v1 hierarchies, so v2 runs against a plain directory
    # standing in for the service's cgroup: this checks the files and values only.
    with tempfile.TemporaryDirectory(dir=private_tmp.parent) as fake:
        own = Path(fake)
        (own / "cgroup.subtree_control").write_text("")
        monkeypatch.setattr(
            cgroups, "_find", lambda: ("v2", dict.fromkeys(("memory", "pids", "cpu"), own))
        )
        tree = CgroupTree.create()
        assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
        [backend_group] = own.glob("agentmem-*")
        assert (backend_group / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
        session = tree.session("s1", TIGHT)
        group = backend_group / "s1"
        assert session.procs_files == [str(group / "cgroup.procs")]
        assert (group / "memory.max").read_text() == str(512 * _MiB)
        assert (group / "pids.max").read_text() == str(TIGHT.processes)
        assert (group / "cpu.max").read_text() == "25000 100000"
