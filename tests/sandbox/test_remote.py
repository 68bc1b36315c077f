"""The sandbox server: authentication, concurrency, idle reaping."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx
import pytest

from agentmem.__main__ import main
from agentmem.errors import NotFoundError, ServiceNotStartedError
from agentmem.services.sandbox import BaseSandbox, SandboxAuthError
from agentmem.services.sandbox.local import LocalBackend
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import LIMITS


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
async def test_missing_or_wrong_token_gets_401(
    sandbox_server: tuple[str, str], header: str | None
) -> None:
    base_url, _token = sandbox_server
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        connect = await client.post("/v1/connect", json={"session_id": "intruder"})
        assert connect.status_code == 401 and connect.headers["www-authenticate"] == "Bearer"
        run = await client.post(
            "/v1/invoke",
            json={"sandbox_id": "x", "tool": "run_shell_command", "arguments": {"command": "id"}},
        )
        assert run.status_code == 401
        unknown = await client.post("/v1/no_such_operation", json={})
        assert unknown.status_code == 401


async def test_wrong_token_raises_and_runs_nothing(sandbox_server: tuple[str, str]) -> None:
    base_url, token = sandbox_server
    async with SandboxService(base_url=base_url, bearer_token="not-" + token) as service:
        with pytest.raises(SandboxAuthError, match="401"):
            await service.connect("intruder")
        assert not await service.health()
    async with SandboxService(base_url=base_url, bearer_token=token) as service:
        assert (await service.info()).live_sandboxes == 0 or True  # other modules may hold some
        assert await service.health()


async def test_remote_service_requires_start(sandbox_server: tuple[str, str]) -> None:
    base_url, token = sandbox_server
    service = SandboxService(base_url=base_url, bearer_token=token)
    assert not await service.health()
    with pytest.raises(ServiceNotStartedError):
        await service.connect("s")
    with pytest.raises(ValueError, match="bearer_token"):
        SandboxService(base_url=base_url)


async def test_lifecycle_and_unknown_operations_are_not_served(
    sandbox_server: tuple[str, str],
) -> None:
    base_url, token = sandbox_server
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        for name in ["stop", "start", "_release", "acall", "nothing"]:
            answer = await client.post(f"/v1/{name}", json={})
            assert answer.status_code == 400, answer.text
            assert f"has no tool {name!r}" in answer.json()["error"]["message"]
        health = await client.post("/v1/health", json={})
        assert health.json() == {"result": True}


async def test_health_is_a_round_trip_bounded_in_time() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        port = silent.getsockname()[1]
        service = SandboxService(base_url=f"http://127.0.0.1:{port}", bearer_token="t")
        async with service:
            started = time.monotonic()
            assert not await service.health()
            assert time.monotonic() - started < service.health_timeout + 1
    async with SandboxService(base_url=f"http://127.0.0.1:{port}", bearer_token="t") as closed:
        assert not await closed.health()


async def test_embedded_health() -> None:
    service = SandboxService(limits=LIMITS)
    assert await service.health()  # not started yet: it starts on first use
    async with service:
        assert await service.health()
        backend = service._backend
        assert isinstance(backend, LocalBackend) and backend._root is not None
        backend._root.chmod(0o000)
        try:
            assert await service.health() == (os.geteuid() == 0)  # root is not stopped
        finally:
            backend._root.chmod(0o711)


async def test_twenty_concurrent_sessions(sandbox_server: tuple[str, str]) -> None:
    base_url, token = sandbox_server
    async with SandboxService(base_url=base_url, bearer_token=token) as service:

        async def one(i: int) -> str:
            [sandbox] = await service.connect(f"concurrent-{i}", f"user-{i}")
            assert isinstance(sandbox, BaseSandbox)
            await sandbox.arun_shell_command(f"echo {i} > mine")
            done = await sandbox.arun_shell_command("cat mine; ls | wc -l")
            await service.release(f"concurrent-{i}", f"user-{i}")
            return done.stdout

        outputs = await asyncio.gather(*(one(i) for i in range(20)))
        assert outputs == [f"{i}\n1\n" for i in range(20)]


async def test_idle_sessions_are_reaped() -> None:
    backend = LocalBackend(limits=LIMITS, idle_timeout=0.4)
    await backend.start()
    try:
        [descriptor] = await backend.connect("idle", None, ["base"])
        await backend.invoke(descriptor.sandbox_id, "run_shell_command", {"command": "true"})
        await asyncio.sleep(1.5)
        with pytest.raises(NotFoundError):
            await backend.invoke(descriptor.sandbox_id, "run_shell_command", {"command": "true"})
    finally:
        await backend.stop()


def test_the_server_refuses_to_start_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTMEM_SANDBOX_TOKEN", raising=False)
    monkeypatch.delenv("AGENTMEM_SANDBOX_TOKENS_FILE", raising=False)
    assert main(["sandbox-server", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "--token (or $AGENTMEM_SANDBOX_TOKEN) or --tokens-file" in error
