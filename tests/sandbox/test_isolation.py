"""What each isolation mode provides, and what info() reports about it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmem.services.sandbox import BaseSandbox, SandboxUnavailableError
from agentmem.services.sandbox.isolation import _python_paths, bubblewrap_problem
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import (
    LIMITS,
    _mounts_below,
    _sandbox_processes,
    backend_cgroups,
    requires_bwrap,
)


def test_construction_needs_no_loop_and_starts_nothing() -> None:
    threads = threading.active_count()
    service = SandboxService()
    assert threading.active_count() == threads
    assert not service._runner.running


@requires_bwrap
async def test_bubblewrap_namespaces() -> None:
    async with SandboxService(isolation="bubblewrap", limits=LIMITS) as service:
        info = await service.info()
        assert info.isolation is not None
        assert info.isolation.mode == "bubblewrap" and not info.isolation.network
        assert info.isolation.read_only_system and info.isolation.private_tmp
        assert info.isolation.separate_pids and "net" in info.isolation.namespaces
        assert info.isolation.warnings == []
        [sandbox] = await service.connect("ns")
        assert isinstance(sandbox, BaseSandbox)
        with tempfile.NamedTemporaryFile(dir="/tmp", prefix="host-only-") as host_file:
            probe = await sandbox.arun_shell_command(
                "hostname; echo $$; touch /usr/x 2>&1; touch /etc/x 2>&1;"
                f" ls /proc | grep -c '^[0-9]'; id -u; ls -A /tmp; ls {host_file.name}"
            )
        lines = probe.stdout.splitlines()
        assert lines[0] == "sandbox"
        assert int(lines[1]) < 10  # a PID namespace of its own
        assert "Read-only file system" in lines[2] and "Read-only file system" in lines[3]
        assert int(lines[4]) < 10  # sees only its own processes
        if os.geteuid() == 0:
            assert lines[5] != "0"  # root services run sandboxes as a uid of their own
        # Private /tmp: the host's files are not there, only the parents of directories
        # bound into the sandbox (its work dir, and Python if it lives under /tmp).
        assert "No such file" in probe.stderr
        bound = [str(sandbox.work_dir), *_python_paths()]
        for entry in lines[6:]:
            assert any(path.startswith(f"/tmp/{entry}") for path in bound), entry
            assert info.isolation.session_uids and info.isolation.kernel_session_uids
        await sandbox.arun_shell_command("echo private > /tmp/p")
        [other] = await service.connect("ns-other")
        seen = await other.arun_shell_command("cat /tmp/p")  # type: ignore[attr-defined]
        assert seen.returncode != 0
        # /tmp of one command is not the next one's: it is per process tree.
        assert (await sandbox.arun_shell_command("ls /tmp/p")).returncode != 0


async def test_process_fallback_is_reported_with_warnings() -> None:
    async with SandboxService(isolation="process", limits=LIMITS) as service:
        info = await service.info()
        assert info.isolation is not None and info.isolation.mode == "process"
        assert info.isolation.network and info.isolation.namespaces == []
        assert any("without bubblewrap" in w for w in info.isolation.warnings)
        [sandbox] = await service.connect("fallback")
        assert isinstance(sandbox, BaseSandbox)
        cell = await sandbox.arun_ipython_cell("import os\nos.getcwd()")
        assert cell.result == repr(sandbox.work_dir)
        shell = await sandbox.arun_shell_command("ulimit -u; ulimit -f; ulimit -n")
        nproc, fsize, nofile = shell.stdout.split()
        assert fsize == str(16 * 1024) and nofile == "128"
        if os.geteuid() == 0:
            assert nproc == "64"


async def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMEM_TEST_SECRET", "leak")
    async with SandboxService(limits=LIMITS) as service:
        [sandbox] = await service.connect("env")
        assert isinstance(sandbox, BaseSandbox)
        shell = await sandbox.arun_shell_command("env")
        assert "AGENTMEM_TEST_SECRET" not in shell.stdout and "PATH=" in shell.stdout
        cell = await sandbox.arun_ipython_cell("import os\n'AGENTMEM_TEST_SECRET' in os.environ")
        assert cell.result == "False"


async def test_bubblewrap_mode_fails_loudly_when_unavailable() -> None:
    if bubblewrap_problem() is None:
        pytest.skip("bubblewrap works here, so nothing fails")
    with pytest.raises(SandboxUnavailableError):
        async with SandboxService(isolation="bubblewrap") as service:
            await service.connect("x")


async def test_stop_leaves_no_process_or_directory() -> None:
    service = SandboxService(limits=LIMITS)
    [sandbox] = await service.connect(f"stop-{uuid.uuid4().hex[:6]}")  # lazy start
    assert isinstance(sandbox, BaseSandbox)
    await sandbox.arun_ipython_cell("1")
    await sandbox.arun_shell_command("(sleep 300 &) ; true")
    root = os.path.dirname(os.path.dirname(sandbox.work_dir))
    assert await asyncio.to_thread(os.path.isdir, root)
    await service.stop()
    assert not await asyncio.to_thread(os.path.exists, root)
    assert _sandbox_processes(root.encode()) == []
    await service.stop()  # idempotent


async def test_a_stopped_service_starts_again() -> None:
    service = SandboxService(limits=LIMITS)
    for _ in range(2):
        [sandbox] = await service.connect("again")
        assert isinstance(sandbox, BaseSandbox)
        assert (await sandbox.arun_shell_command("echo up")).stdout == "up\n"
        await service.stop()
    assert await service.health()  # embedded and stopped: starts on the next use


@pytest.fixture
def server_to_kill(private_tmp: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """A sandbox server for a test to kill: (base_url, token, process)."""
    token = secrets.token_urlsafe(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "agentmem", "sandbox-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(private_tmp), "AGENTMEM_SANDBOX_TOKEN": token},
    )
    assert server.stdout is not None
    try:
        yield server.stdout.readline().split()[-1], token, server
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def _left_by(pid: int, private_tmp: Path) -> list[object]:
    """The mounts, directories and cgroups of the sandbox backend of process ``pid``."""
    prefix = f"agentmem-sbx-{pid}-"
    mounts = [point for point in _mounts_below(private_tmp) if prefix in point]
    directories = [path for path in private_tmp.iterdir() if path.name.startswith(prefix)]
    return [*mounts, *directories, *backend_cgroups(pid)]


async def test_what_a_killed_server_left_goes_when_the_next_service_starts(
    server_to_kill: tuple[str, str, subprocess.Popen[str]], private_tmp: Path
) -> None:
    url, token, server = server_to_kill
    async with SandboxService(base_url=url, bearer_token=token) as remote:
        [sandbox] = await remote.connect("doomed")
        assert isinstance(sandbox, BaseSandbox)
        await sandbox.arun_shell_command("head -c 1M /dev/zero > data")
        info = await remote.info()
    assert info.isolation is not None
    if info.isolation.cgroup is None or "disk_bytes" not in info.isolation.session_limits:
        pytest.skip(f"no cgroup or mount per session here: {info.isolation.warnings}")
    server.kill()  # no chance to stop: its session's mount and cgroup stay
    server.wait()
    assert _left_by(server.pid, private_tmp)
    async with SandboxService(limits=LIMITS) as service:
        [sandbox] = await service.connect("next")
        assert isinstance(sandbox, BaseSandbox)
        assert _left_by(server.pid, private_tmp) == []
