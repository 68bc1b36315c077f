"""A sandbox server shared by several users: tokens bound to user ids, and limits that a
client cannot raise. A real server in per-user mode on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from agentmem.__main__ import main
from agentmem.errors import BackendError, InvalidArgumentError
from agentmem.services.sandbox import (
    BaseSandbox,
    FilesystemSandbox,
    SandboxAuthError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import LIMITS, running_server
from tests.sandbox.server_types import SECRET

ALICE, BOB, OPS = (f"token-{name}-{uuid.uuid4().hex}" for name in ("alice", "bob", "ops"))
TOKENS = {ALICE: ["alice"], BOB: ["bob"], OPS: ["carol", "dave"]}
MAX_REQUEST_BYTES = 1024 * 1024
MAX_SANDBOXES = 5
MAX_PER_USER = 3


@pytest.fixture(scope="module")
def private_dir(private_tmp: Path) -> Iterator[Path]:
    """A directory for token files, apart from the sandboxes' temp directory."""
    with tempfile.TemporaryDirectory(dir=private_tmp.parent) as path:
        yield Path(path)


@pytest.fixture(scope="module")
def server(private_tmp: Path, private_dir: Path) -> Iterator[str]:
    """A per-user server whose calls may last 3 s at most: its base URL."""
    tokens_file = private_dir / "tokens.json"
    tokens_file.write_text(json.dumps(TOKENS))
    tokens_file.chmod(0o600)
    arguments = [
        "--limits",
        LIMITS.model_copy(update={"timeout_seconds": 3}).model_dump_json(),
        "--max-request-bytes",
        str(MAX_REQUEST_BYTES),
        "--max-sandboxes",
        str(MAX_SANDBOXES),
        "--max-sandboxes-per-user",
        str(MAX_PER_USER),
        "--import",
        "tests.sandbox.server_types",
    ]
    environment = {"AGENTMEM_SANDBOX_TOKENS_FILE": str(tokens_file)}
    with running_server(private_tmp, arguments, environment) as url:
        yield url


@pytest.fixture
async def as_alice(server: str) -> AsyncIterator[SandboxService]:
    async with SandboxService(base_url=server, bearer_token=ALICE) as service:
        yield service


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def _raw(server: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {token}"})


async def test_a_token_acts_only_for_its_users(server: str, as_alice: SandboxService) -> None:
    sid = f"shared-{uuid.uuid4().hex[:8]}"
    [files] = await as_alice.connect(sid, "alice", ["filesystem"])
    assert isinstance(files, FilesystemSandbox)
    await files.awrite_file("secret.txt", "alice's")
    async with SandboxService(base_url=server, bearer_token=BOB) as bob:
        with pytest.raises(SandboxAuthError, match="may not act for user 'alice'"):
            await bob.connect(sid, "alice", ["filesystem"])
        with pytest.raises(SandboxAuthError, match="may not act for user 'alice'"):
            await bob.release(sid, "alice")
        with pytest.raises(SandboxAuthError, match="no user_id"):
            await bob.connect(sid)
        # Alice's sandbox id with Bob's token, straight over HTTP: 403, and nothing runs.
        async with _raw(server, BOB) as raw:
            for tool, arguments in [
                ("read_file", {"path": "secret.txt"}),
                ("run_shell_command", {"command": "touch pwned"}),
            ]:
                body = {"sandbox_id": files.sandbox_id, "tool": tool, "arguments": arguments}
                answer = await raw.post("/v1/invoke", json=body)
                assert answer.status_code == 403, answer.text
                assert answer.json()["error"]["type"] == "SandboxAuthError"
                assert "alice's" not in answer.text
        [own] = await bob.connect(sid, "bob")
        assert isinstance(own, BaseSandbox)
        assert (await own.arun_shell_command("ls")).stdout == ""
        await bob.release(sid, "bob")
    # Bob's release did not happen, and his command did not run.
    assert await files.aread_file("secret.txt") == "alice's"
    assert [entry.name for entry in await files.alist_directory()] == ["secret.txt"]
    await as_alice.release(sid, "alice")


async def test_one_token_may_act_for_several_users(server: str) -> None:
    async with SandboxService(base_url=server, bearer_token=OPS) as ops:
        for user in ("carol", "dave"):
            [sandbox] = await ops.connect("ops", user)
            assert sandbox.user_id == user
            await ops.release("ops", user)
        with pytest.raises(SandboxAuthError):
            await ops.connect("ops", "alice")
        info = await ops.info()
        assert info.per_user_tokens and info.max_sandboxes == MAX_SANDBOXES
        assert info.max_sandboxes_per_user == MAX_PER_USER
    async with _raw(server, "not-a-token") as raw:
        assert (await raw.post("/v1/health", json={})).status_code == 401


async def test_a_client_cannot_raise_the_timeout(as_alice: SandboxService) -> None:
    [sandbox] = await as_alice.connect("timeouts", "alice")
    assert isinstance(sandbox, BaseSandbox)
    longer = await sandbox.arun_shell_command("sleep 10; echo done", timeout=1e9)
    assert longer.timed_out and "done" not in longer.stdout and longer.duration_seconds < 8
    shorter = await sandbox.arun_shell_command("sleep 10", timeout=1)
    assert shorter.timed_out and shorter.duration_seconds < 3
    cell = await sandbox.arun_ipython_cell("import time\ntime.sleep(10)", timeout=1e9)
    assert cell.status == "timeout" and cell.duration_seconds < 8
    for bad in ["x", 0, -1]:
        with pytest.raises(InvalidArgumentError) as refused:
            await sandbox.acall("run_shell_command", command="true", timeout=bad)
        assert refused.value.field == "run_shell_command.timeout"
    await as_alice.release("timeouts", "alice")


async def test_request_bodies_are_capped(server: str, as_alice: SandboxService) -> None:
    async with _raw(server, ALICE) as raw:
        big = json.dumps({"session_id": "x" * 2 * MAX_REQUEST_BYTES, "user_id": "alice"})
        declared = await raw.post("/v1/connect", content=big)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b" " * 64 * 1024  # no Content-Length: sent chunked

        streamed = await raw.post("/v1/connect", content=chunks())
        for answer in (declared, streamed):
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"]["field"] == "body"
    [files] = await as_alice.connect("bodies", "alice", ["filesystem"])
    with pytest.raises(InvalidArgumentError, match="max_request_bytes"):
        await files.awrite_file("big.txt", "x" * 2 * MAX_REQUEST_BYTES)  # type: ignore[attr-defined]
    await files.awrite_file("small.txt", "x" * 1000)  # type: ignore[attr-defined]
    assert await as_alice.health()
    await as_alice.release("bodies", "alice")


async def test_sandboxes_are_capped_per_user_and_in_total(server: str) -> None:
    async with SandboxService(base_url=server, bearer_token=OPS) as ops:
        for i in range(MAX_PER_USER):
            await ops.connect(f"cap-{i}", "carol")
        with pytest.raises(SandboxUnavailableError, match="this user holds its maximum of 3"):
            await ops.connect("cap-3", "carol")
        await ops.connect("cap-0", "carol")  # creates nothing, so it is allowed
        for i in range(MAX_SANDBOXES - MAX_PER_USER):
            await ops.connect(f"cap-{i}", "dave")
        async with _raw(server, OPS) as raw:
            body = {"session_id": "cap-9", "user_id": "dave", "sandbox_types": ["base"]}
            full = await raw.post("/v1/connect", json=body)
        assert full.status_code == 429, full.text
        assert f"maximum of {MAX_SANDBOXES} sandboxes" in full.json()["error"]["message"]
        assert (await ops.info()).live_sandboxes == MAX_SANDBOXES
        await ops.release("cap-0", "carol")
        await ops.connect("cap-9", "dave")
        for session, user in [("cap-1", "carol"), ("cap-2", "carol"), ("cap-9", "dave")]:
            await ops.release(session, user)
        for i in range(MAX_SANDBOXES - MAX_PER_USER):
            await ops.release(f"cap-{i}", "dave")
        assert (await ops.info()).live_sandboxes == 0


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"{nope", "is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than 32 levels"),
        (json.dumps({"session_id": "s", "x": _nested(40)}).encode(), "nests deeper than 32 levels"),
        (b'{"session_id": NaN}', "NaN is not a JSON value"),
        (b"\xff\xfe\xfd", "is not UTF-8 JSON"),
        (b"[1]", "must be a JSON object"),
    ],
)
async def test_malformed_json_gets_400_with_a_short_message(
    server: str, body: bytes, rule: str
) -> None:
    async with _raw(server, ALICE) as raw:
        answer = await raw.post("/v1/connect", content=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "InvalidArgumentError" and error["field"] == "body"
    assert rule in error["rule"] and len(error["message"]) < 200


async def test_ids_are_checked_as_in_the_embedded_service(server: str) -> None:
    async with _raw(server, ALICE) as raw:
        for session_id, types, field in [
            ("", ["base"], "session_id"),
            ("s", [], "sandbox_types"),
            ("s" * 2000, ["base"], "session_id"),
            ("s", "base", "connect.sandbox_types"),
        ]:
            body = {"session_id": session_id, "user_id": "alice", "sandbox_types": types}
            answer = await raw.post("/v1/connect", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field
        released = await raw.post("/v1/release", json={"session_id": " ", "user_id": "alice"})
        assert released.status_code == 422


async def test_internal_errors_stay_in_the_servers_log(as_alice: SandboxService) -> None:
    [crashing] = await as_alice.connect("crash", "alice", ["crashing"])
    with pytest.raises(BackendError) as failed:
        await crashing.acall("crash")
    assert SECRET not in str(failed.value) and "its log has the details" in str(failed.value)
    await as_alice.release("crash", "alice")


def test_help_describes_both_modes() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "agentmem", "sandbox-server", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "single token" in shown and "per user" in shown and "--tokens-file" in shown
    assert "one tenant" in shown and "403" in shown


def test_a_tokens_file_must_be_private_and_exclusive(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTMEM_SANDBOX_TOKEN", raising=False)
    monkeypatch.delenv("AGENTMEM_SANDBOX_TOKENS_FILE", raising=False)
    tokens = private_dir / "other-tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    tokens.chmod(0o644)
    assert main(["sandbox-server", "--port", "0", "--tokens-file", str(tokens)]) == 2
    assert "readable by every user" in capsys.readouterr().err
    tokens.chmod(0o600)
    both = ["sandbox-server", "--port", "0", "--tokens-file", str(tokens), "--token", "t"]
    assert main(both) == 2
    assert "either a token" in capsys.readouterr().err
    tokens.write_text(json.dumps({"t": []}))
    assert main(["sandbox-server", "--port", "0", "--tokens-file", str(tokens)]) == 2
    assert "non-empty list of user ids" in capsys.readouterr().err
