"""Hostile code, in both isolation modes: each attack is contained and reported, and the
service stays healthy afterwards. Limits come from ``conftest.LIMITS`` (64 processes,
1 GiB of address space, 16 MiB files)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from agentmem.services.sandbox import BaseSandbox
from agentmem.services.sandbox_service import SandboxService


@pytest.fixture
async def sandbox(isolated_service: SandboxService) -> AsyncIterator[BaseSandbox]:
    sid = f"hostile-{uuid.uuid4().hex[:8]}"
    [sandbox] = await isolated_service.connect(sid, "mallory")
    assert isinstance(sandbox, BaseSandbox)
    yield sandbox
    # Whatever happened, the service still serves new sandboxes.
    assert await isolated_service.health()
    await isolated_service.release(sid, "mallory")
    [probe] = await isolated_service.connect(sid, "after")
    assert (await probe.arun_shell_command("echo ok")).stdout == "ok\n"  # type: ignore[attr-defined]
    await isolated_service.release(sid, "after")


async def _mode(service: SandboxService) -> str:
    info = await service.info()
    assert info.isolation is not None
    return info.isolation.mode


async def test_infinite_loop_is_stopped(sandbox: BaseSandbox) -> None:
    cell = await sandbox.arun_ipython_cell("while True: pass", timeout=1)
    assert cell.status == "timeout"
    shell = await sandbox.arun_shell_command("while :; do :; done", timeout=1)
    assert shell.timed_out
    assert (await sandbox.arun_ipython_cell("1 + 1")).result == "2"


async def test_cell_ignoring_interrupts_restarts_the_kernel(sandbox: BaseSandbox) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    cell = await sandbox.arun_ipython_cell(code, timeout=1)
    assert cell.status == "timeout" and cell.kernel_restarted
    assert "restarting the kernel" in (cell.error.evalue if cell.error else "")
    after = await sandbox.arun_ipython_cell("'fresh'")
    assert after.result == "'fresh'" and not after.kernel_restarted


async def test_shell_fork_bomb_hits_the_process_limit(sandbox: BaseSandbox) -> None:
    bomb = await sandbox.arun_shell_command("bomb() { bomb | bomb & }; bomb; sleep 2", timeout=5)
    assert "Resource temporarily unavailable" in bomb.stderr, bomb
    assert (await sandbox.arun_shell_command("echo survived")).stdout == "survived\n"


async def test_python_fork_bomb_in_a_cell(
    sandbox: BaseSandbox, isolated_service: SandboxService
) -> None:
    info = await isolated_service.info()
    assert info.isolation is not None
    if "processes" not in info.isolation.enforced_limits:
        pytest.skip(
            "kernels run without a process limit here: " + "; ".join(info.isolation.warnings)
        )
    cell = await sandbox.arun_ipython_cell("import os\nwhile True:\n    os.fork()", timeout=10)
    assert cell.status in {"error", "timeout"}
    assert cell.error is not None and cell.error.ename in {"BlockingIOError", "TimeoutError"}
    # The forked copies of the kernel were killed, so the budget is free again.
    shell = await sandbox.arun_ipython_cell(
        "import subprocess\nsubprocess.run(['true']).returncode"
    )
    assert shell.result == "0"


async def test_memory_bomb_hits_the_memory_limit(sandbox: BaseSandbox) -> None:
    cell = await sandbox.arun_ipython_cell("hog = []\nwhile True: hog.append(bytearray(50 << 20))")
    assert cell.status == "error" and cell.error and cell.error.ename == "MemoryError"
    assert (await sandbox.arun_ipython_cell("del hog\n'ok'")).result == "'ok'"
    # tail keeps the whole (newline-free) last line in memory: it fails at its own limit,
    # or the session's cgroup, which also holds the kernel, kills it first.
    shell = await sandbox.arun_shell_command("head -c 3G /dev/zero | tail -n 1 > /dev/null")
    assert shell.returncode != 0
    assert "memory exhausted" in shell.stderr or "Killed" in shell.stderr, shell


async def test_huge_file_hits_the_file_size_limit(sandbox: BaseSandbox) -> None:
    shell = await sandbox.arun_shell_command("head -c 3G /dev/zero > big; stat -c %s big")
    assert "File too large" in shell.stderr or shell.signal == "SIGXFSZ", shell
    assert shell.stdout.strip() == str(16 * 1024 * 1024)
    cell = await sandbox.arun_ipython_cell("open('big2', 'wb').write(bytes(3 << 30))")
    assert cell.status == "error" and cell.error
    assert cell.error.ename in {"OSError", "MemoryError"}


async def test_network_is_unreachable_under_bubblewrap(
    sandbox: BaseSandbox, isolated_service: SandboxService
) -> None:
    if await _mode(isolated_service) != "bubblewrap":
        pytest.skip("only bubblewrap gives sandboxes a network namespace of their own")
    code = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=3)"
    cell = await sandbox.arun_ipython_cell(code)
    assert cell.status == "error" and cell.error and cell.error.ename == "OSError"
    assert "unreachable" in cell.error.evalue
    interfaces = await sandbox.arun_ipython_cell("[name for _, name in socket.if_nameindex()]")
    assert interfaces.result == "['lo']"


async def test_other_sandboxes_files_are_out_of_reach(
    sandbox: BaseSandbox, isolated_service: SandboxService
) -> None:
    [victim] = await isolated_service.connect(f"victim-{uuid.uuid4().hex[:6]}", "victim")
    assert isinstance(victim, BaseSandbox)
    await victim.arun_shell_command("echo top-secret > secret.txt")
    if await _mode(isolated_service) == "process" and os.geteuid() != 0:
        pytest.skip("without bubblewrap or root, sandboxes share the service's uid")
    path = f"{victim.work_dir}/secret.txt"
    shell = await sandbox.arun_shell_command(f"cat {path}; ls {victim.work_dir}")
    assert "top-secret" not in shell.stdout and shell.returncode != 0
    info = await isolated_service.info()
    assert info.isolation is not None
    if info.isolation.mode == "bubblewrap" or info.isolation.kernel_session_uids:
        cell = await sandbox.arun_ipython_cell(f"open({path!r}).read()")
        assert cell.status == "error" and cell.error
        assert cell.error.ename in {"FileNotFoundError", "PermissionError"}
    await isolated_service.release(victim.session_id, "victim")


async def test_service_files_cannot_be_swapped_for_symlinks(sandbox: BaseSandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root service could be tricked into writing elsewhere")
    # The service (root) writes the kernel's connection file and log next to $HOME.
    await sandbox.arun_ipython_cell("1")
    shell = await sandbox.arun_shell_command(
        'ln -sf /etc/hostname "$HOME/../kernel.log"; ln -sf /etc/hostname "$HOME/../kernel.json"'
    )
    assert shell.returncode != 0 and shell.stderr.count("Permission denied") == 2, shell
