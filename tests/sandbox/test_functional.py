"""What every sandbox does, embedded and through the sandbox server alike."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agentmem.errors import InvalidArgumentError, NotFoundError
from agentmem.services.sandbox import (
    BaseSandbox,
    EditOperation,
    FilesystemSandbox,
    SandboxError,
    SandboxPathError,
)
from agentmem.services.sandbox_service import SandboxService


@pytest.fixture
def sid() -> str:
    return f"session-{uuid.uuid4().hex[:8]}"


async def _fs(service: SandboxService, sid: str, user: str | None = "alice") -> FilesystemSandbox:
    [sandbox] = await service.connect(sid, user, ["filesystem"])
    assert isinstance(sandbox, FilesystemSandbox)
    return sandbox


async def test_kernel_state_persists_between_cells(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid, "alice")
    assert isinstance(sandbox, BaseSandbox) and sandbox.type == "base"
    first = await sandbox.arun_ipython_cell("x = 20\nprint('hello')\nx + 1")
    assert (first.status, first.stdout, first.result) == ("ok", "hello\n", "21")
    second = await sandbox.arun_ipython_cell("import sys\nprint('err', file=sys.stderr)\nx * 2")
    assert (second.status, second.stderr, second.result) == ("ok", "err\n", "40")
    assert second.execution_count == first.execution_count + 1  # type: ignore[operator]
    await service.release(sid, "alice")


async def test_cell_errors_are_structured(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid)
    result = await sandbox.arun_ipython_cell("print('before')\n1 / 0")  # type: ignore[attr-defined]
    assert result.status == "error" and result.stdout == "before\n"
    assert result.error.ename == "ZeroDivisionError"
    assert any("1 / 0" in line for line in result.error.traceback)
    assert not any("\x1b[" in line for line in result.error.traceback)
    await service.release(sid)


async def test_shell_commands(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid)
    assert isinstance(sandbox, BaseSandbox)
    done = await sandbox.arun_shell_command("echo out; echo err >&2; pwd; exit 3")
    assert done.returncode == 3 and not done.timed_out
    assert done.stdout == f"out\n{sandbox.work_dir}\n" and done.stderr == "err\n"
    written = await sandbox.arun_shell_command("echo data > f.txt && cat f.txt")
    assert written.stdout == "data\n"
    # The kernel and the shell share the session's directory.
    cell = await sandbox.arun_ipython_cell("open('f.txt').read()")
    assert cell.result == "'data\\n'"
    await service.release(sid)


async def test_output_is_capped(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid)
    assert isinstance(sandbox, BaseSandbox)
    shell = await sandbox.arun_shell_command("head -c 1000000 /dev/zero | tr '\\0' a")
    assert shell.truncated and len(shell.stdout) < 70 * 1024
    cell = await sandbox.arun_ipython_cell("print('b' * 1_000_000)")
    assert cell.truncated and len(cell.stdout) < 70 * 1024
    await service.release(sid)


async def test_sync_methods(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid, "alice", ["filesystem"])
    assert isinstance(sandbox, FilesystemSandbox)

    def use_sync() -> tuple[str, str | None, str]:
        sandbox.write_file("s.txt", "sync")
        cell = sandbox.run_ipython_cell("open('s.txt').read()")
        shell = sandbox.run_shell_command("cat s.txt")
        return sandbox.read_file("s.txt"), cell.result, shell.stdout

    assert await asyncio.to_thread(use_sync) == ("sync", "'sync'", "sync")
    await service.release(sid, "alice")


async def test_filesystem_operations(service: SandboxService, sid: str) -> None:
    fs = await _fs(service, sid)
    root = fs.work_dir
    assert await fs.alist_allowed_directories() == [root]

    await fs.acreate_directory("src/pkg")
    await fs.acreate_directory("src/pkg")  # existing directories are fine
    await fs.awrite_file("src/pkg/a.py", "x = 1\ny = 2\n")
    await fs.awrite_file(f"{root}/src/b.txt", "bee")  # absolute paths inside work
    assert await fs.aread_file("src/pkg/a.py") == "x = 1\ny = 2\n"

    contents = await fs.aread_multiple_files(["src/b.txt", "missing.txt"])
    assert contents[0].content == "bee" and contents[0].error is None
    assert contents[1].content is None and "does not exist" in (contents[1].error or "")

    diff = await fs.aedit_file("src/pkg/a.py", [EditOperation(old_text="y = 2", new_text="y = 3")])
    assert "-y = 2" in diff and "+y = 3" in diff
    assert await fs.aread_file("src/pkg/a.py") == "x = 1\ny = 3\n"
    preview = await fs.aedit_file(
        "src/pkg/a.py", [{"old_text": "x = 1", "new_text": "x = 0"}], dry_run=True
    )
    assert "+x = 0" in preview and await fs.aread_file("src/pkg/a.py") == "x = 1\ny = 3\n"
    with pytest.raises(SandboxError, match="does not occur"):
        await fs.aedit_file("src/pkg/a.py", [EditOperation(old_text="zzz", new_text="")])

    listing = await fs.alist_directory("src")
    assert [(e.name, e.type) for e in listing] == [("b.txt", "file"), ("pkg", "directory")]
    tree = await fs.adirectory_tree()
    [src] = tree.children or []
    assert src.name == "src" and [c.name for c in src.children or []] == ["b.txt", "pkg"]

    await fs.amove_file("src/b.txt", "src/pkg/c.txt")
    with pytest.raises(SandboxError, match="already exists"):
        await fs.amove_file("src/pkg/a.py", "src/pkg/c.txt")
    assert await fs.asearch_files(".", "*.TXT") == [f"{root}/src/pkg/c.txt"]
    assert await fs.asearch_files("src", "a.p") == [f"{root}/src/pkg/a.py"]
    assert await fs.asearch_files(".", "*", exclude_patterns=["pkg"]) == [f"{root}/src"]

    info = await fs.aget_file_info("src/pkg/c.txt")
    assert (info.type, info.size, info.path) == ("file", 3, f"{root}/src/pkg/c.txt")
    assert (await fs.aget_file_info(".")).type == "directory"
    with pytest.raises(NotFoundError):
        await fs.aread_file("nope.txt")
    # Files written by the filesystem tools are the sandboxed code's to change.
    changed = await fs.arun_shell_command("echo more >> src/pkg/c.txt && cat src/pkg/c.txt")
    assert changed.stdout == "beemore\n", changed
    await service.release(sid, "alice")


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "src/../../x", "/tmp", "../" + "x"],
)
async def test_paths_outside_are_rejected(service: SandboxService, sid: str, path: str) -> None:
    fs = await _fs(service, sid)
    with pytest.raises(SandboxPathError, match=r"outside|leaves"):
        await fs.aread_file(path)
    with pytest.raises(SandboxPathError):
        await fs.awrite_file(path, "x")
    await service.release(sid, "alice")


async def test_symlinks_are_never_followed(service: SandboxService, sid: str) -> None:
    fs = await _fs(service, sid)
    made = await fs.arun_shell_command(
        "ln -s /etc/passwd pw && ln -s /etc etcdir && ln -s .. up && echo hi > real"
        " && ln -s real inside"
    )
    assert made.returncode == 0, made
    for path in ["pw", "etcdir/passwd", "up/work/real", "inside"]:
        with pytest.raises(SandboxPathError, match="symbolic link"):
            await fs.aread_file(path)
    with pytest.raises(SandboxPathError, match="symbolic link"):
        await fs.awrite_file("etcdir/evil", "x")
    with pytest.raises(SandboxPathError, match="symbolic link"):
        await fs.alist_directory("etcdir")
    # Listings show the links without following them.
    entries = {e.name: e.type for e in await fs.alist_directory()}
    assert entries["pw"] == "symlink" and entries["etcdir"] == "symlink"
    assert (await fs.aget_file_info("pw")).type == "symlink"
    await service.release(sid, "alice")


async def test_connect_again_returns_the_same_sandboxes(service: SandboxService, sid: str) -> None:
    base, fs = await service.connect(sid, "alice", ["base", "filesystem"])
    await base.arun_ipython_cell("kept = 'yes'")  # type: ignore[attr-defined]
    again = await service.connect(sid, "alice", ["filesystem", "base"])
    assert [s.sandbox_id for s in again] == [fs.sandbox_id, base.sandbox_id]
    cell = await again[1].arun_ipython_cell("kept")  # type: ignore[attr-defined]
    assert cell.result == "'yes'"

    await fs.awrite_file("note", "n")  # type: ignore[attr-defined]
    await service.release(sid, "alice")
    with pytest.raises(NotFoundError, match="no live sandbox"):
        await base.arun_ipython_cell("kept")  # type: ignore[attr-defined]
    await service.release(sid, "alice")  # releasing twice is harmless

    [fresh] = await service.connect(sid, "alice", ["filesystem"])
    assert fresh.sandbox_id != fs.sandbox_id
    assert await fresh.alist_directory() == []  # type: ignore[attr-defined]
    cell = await fresh.arun_ipython_cell("'kept' in dir()")  # type: ignore[attr-defined]
    assert cell.result == "False"
    await service.release(sid, "alice")


async def test_users_never_share_files_or_kernels(service: SandboxService, sid: str) -> None:
    [alice] = await service.connect(sid, "alice", ["filesystem"])
    [bob] = await service.connect(sid, "bob", ["filesystem"])
    assert isinstance(alice, FilesystemSandbox) and isinstance(bob, FilesystemSandbox)
    assert alice.work_dir != bob.work_dir
    await alice.awrite_file("secret.txt", "alice's")
    await alice.arun_ipython_cell("secret = 42")
    assert await bob.alist_directory() == []
    with pytest.raises(NotFoundError):
        await bob.aread_file("secret.txt")
    with pytest.raises(SandboxPathError):
        await bob.aread_file(f"{alice.work_dir}/secret.txt")
    cell = await bob.arun_ipython_cell("secret")
    assert cell.status == "error" and cell.error and cell.error.ename == "NameError"
    await service.release(sid, "alice")
    await service.release(sid, "bob")


async def test_session_user_keys_do_not_collide(service: SandboxService, sid: str) -> None:
    # AgentScope Runtime 1.0 joined f"{session}_{user}": these two shared one sandbox.
    [joined] = await service.connect(f"{sid}_b")
    [split] = await service.connect(sid, "b")
    assert joined.sandbox_id != split.sandbox_id and joined.work_dir != split.work_dir
    await service.release(f"{sid}_b")
    await service.release(sid, "b")


async def test_timeout_interrupts_and_keeps_the_sandbox(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid)
    assert isinstance(sandbox, BaseSandbox)
    await sandbox.arun_ipython_cell("before = 1")
    stuck = await sandbox.arun_ipython_cell("while True: pass", timeout=1.5)
    assert stuck.status == "timeout" and stuck.error and stuck.error.ename == "TimeoutError"
    assert 1.5 <= stuck.duration_seconds < 10
    after = await sandbox.arun_ipython_cell("before + 1")
    assert after.result == "2" and not after.kernel_restarted

    shell = await sandbox.arun_shell_command("sleep 30", timeout=1)
    assert shell.timed_out and shell.returncode < 0 and "longer than 1 s" in shell.stderr
    assert (await sandbox.arun_shell_command("echo alive")).stdout == "alive\n"
    assert await service.health()
    await service.release(sid)


async def test_unknown_tools_and_types_are_readable_errors(
    service: SandboxService, sid: str
) -> None:
    with pytest.raises(SandboxError, match="unknown sandbox type 'gpu'"):
        await service.connect(sid, None, ["gpu"])
    [sandbox] = await service.connect(sid)
    with pytest.raises(SandboxError, match="has no tool 'read_file'"):
        await sandbox.acall("read_file", path="x")
    with pytest.raises(ValueError, match="bad arguments"):
        await sandbox.acall("run_shell_command", cmd="true")
    await service.release(sid)


async def test_info_and_health(service: SandboxService) -> None:
    assert await service.health()
    info = await service.info()
    assert info.remote == service.remote
    assert {"base", "filesystem"} <= set(info.sandbox_types)
    assert info.isolation is not None and info.limits.processes == 64
    assert "timeout_seconds" in info.isolation.enforced_limits


async def test_release_during_a_call_stops_it(service: SandboxService, sid: str) -> None:
    [sandbox] = await service.connect(sid)
    assert isinstance(sandbox, BaseSandbox)
    await sandbox.arun_ipython_cell("1")  # the kernel is up
    running = asyncio.create_task(sandbox.arun_ipython_cell("import time\ntime.sleep(15)"))
    await asyncio.sleep(1)
    await service.release(sid)
    with pytest.raises(SandboxError, match="released"):
        await asyncio.wait_for(running, 10)


async def test_arguments_are_checked_against_the_tool(service: SandboxService, sid: str) -> None:
    fs = await _fs(service, sid)
    with pytest.raises(InvalidArgumentError) as wrong_type:
        await fs.acall("read_file", path=5)
    assert wrong_type.value.field == "read_file.path"
    with pytest.raises(InvalidArgumentError) as incomplete:
        await fs.aedit_file("a.txt", [{"old_text": "x"}])
    assert (incomplete.value.field, incomplete.value.rule) == (
        "edit_file.edits[0].new_text",
        "Field required",
    )
    for bad_id in ["", "  ", "x" * 2000, "\ud800"]:
        with pytest.raises(InvalidArgumentError, match="session_id"):
            await service.connect(bad_id)
    await service.release(sid, "alice")
