"""Fixtures of the sandbox tests: embedded services per isolation mode and a real server.

Limits are low and timeouts short so that hostile code stays cheap on a 2-core machine.
Every fixture stops what it started; ``private_tmp`` checks that no sandbox
directory, process, mount or cgroup outlives the tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentmem.services.sandbox.cgroups import CgroupError, _find
from agentmem.services.sandbox.isolation import bubblewrap_problem
from agentmem.services.sandbox.models import SandboxLimits
from agentmem.services.sandbox.storage import mounts
from agentmem.services.sandbox_service import SandboxService

LIMITS = SandboxLimits(
    cpu_seconds=30,
    memory_bytes=1024 * 1024 * 1024,
    processes=64,
    file_size_bytes=16 * 1024 * 1024,
    open_files=128,
    timeout_seconds=20,
    max_output_bytes=64 * 1024,
    tmp_size_bytes=32 * 1024 * 1024,
    disk_bytes=64 * 1024 * 1024,
    disk_files=5000,
)

requires_bwrap = pytest.mark.skipif(
    bubblewrap_problem() is not None,
    reason=f"bubblewrap cannot isolate sandboxes here: {bubblewrap_problem()}",
)


def _sandbox_processes(marker: bytes) -> list[str]:
    """Command lines of live (non-zombie) processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def _mounts_below(path: Path) -> list[str]:
    return [str(point) for point, *_ in mounts() if point.is_relative_to(path) and point != path]


def backend_cgroups(pid: int) -> list[Path]:
    """The cgroups that sandbox backends of process ``pid`` made and did not delete."""
    try:
        _version, own = _find()
    except CgroupError:
        return []
    pattern = f"agentmem-{pid}-*"
    return [group for directory in set(own.values()) for group in directory.glob(pattern)]


@pytest.fixture(scope="package", autouse=True)
def private_tmp() -> Iterator[Path]:
    """A temp directory of the sandbox tests, where all their sandboxes live.

    Other test runs may use sandboxes at the same time; a directory of our own lets
    the final check see only what these tests left behind. Package scope restores the
    default temp directory before the rest of the suite runs, so files other tests
    create never land here.
    """
    path = Path(tempfile.mkdtemp(prefix="agentmem-sbx-tests-"))
    path.chmod(0o711)  # sandbox uids must reach their directories inside
    saved = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield path
        deadline = time.monotonic() + 10
        while _sandbox_processes(bytes(path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _sandbox_processes(bytes(path)), "sandbox processes outlived the tests"
        assert not _mounts_below(path), "session mounts outlived the tests"
        assert not backend_cgroups(os.getpid()), "sandbox cgroups outlived the tests"
        assert not list(path.iterdir()), "sandbox directories outlived the tests"
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_server(
    private_tmp: Path, arguments: list[str], environment: dict[str, str]
) -> Iterator[str]:
    """A real ``agentmem sandbox-server`` on a free loopback port: its base URL.

    Its cgroups must be gone once it has stopped.
    """
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentmem",
                "sandbox-server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *arguments,
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, "TMPDIR": str(private_tmp), **environment},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "listening on" not in line:
                errors.seek(0)
                pytest.fail(f"sandbox server did not start: {line!r} {errors.read()!r}")
            yield line.rsplit(" ", 1)[1].strip()
        finally:
            proc.stdout.close()  # type: ignore[union-attr]
            proc.terminate()
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            errors.seek(0)
            # uvicorn shuts down gracefully, then re-raises the signal to exit with it.
            assert code in (0, -signal.SIGTERM), f"sandbox server exited {code}: {errors.read()!r}"
            assert not backend_cgroups(proc.pid), "the server left cgroups behind"


@pytest.fixture(scope="package")
def sandbox_server(private_tmp: Path) -> Iterator[tuple[str, str]]:
    """A real single-token ``agentmem sandbox-server``: (base_url, token)."""
    token = secrets.token_urlsafe(16)
    # The token goes through the environment, as the server's help advises: a command
    # line is public, and a token starting with "-" would read as an option there.
    environment = {"AGENTMEM_SANDBOX_TOKEN": token}
    with running_server(private_tmp, ["--limits", LIMITS.model_dump_json()], environment) as url:
        yield url, token


@pytest.fixture(scope="module", params=["embedded", "remote"])
async def service(
    request: pytest.FixtureRequest, sandbox_server: tuple[str, str]
) -> AsyncIterator[SandboxService]:
    """The functional suite runs against an embedded service and through the server."""
    if request.param == "embedded":
        svc = SandboxService(limits=LIMITS)
    else:
        base_url, token = sandbox_server
        svc = SandboxService(base_url=base_url, bearer_token=token)
    async with svc:
        yield svc


@pytest.fixture(
    scope="module",
    params=[pytest.param("bubblewrap", marks=requires_bwrap), "process"],
)
async def isolated_service(request: pytest.FixtureRequest) -> AsyncIterator[SandboxService]:
    """Embedded services forced to each isolation mode (process = the fallback)."""
    async with SandboxService(isolation=request.param, limits=LIMITS) as svc:
        yield svc
