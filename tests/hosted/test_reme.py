"""ReMe services: configuration without the SDK, and ReMe itself against local stand-ins.

ReMe needs an LLM and an embedding model behind OpenAI-compatible APIs. The tests that
run ReMe (skipped where ``agentmem-services[reme]`` is not installed) point it at a local HTTP
stand-in that answers embeddings with fixed vectors and chat completions with an empty
list, so ReMe's flows run for real but its LLM extracts nothing; memories are then put
in ReMe's own local vector store to be listed and deleted. Only the live tests check
ReMe's extraction with real models.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentmem import MemoryServiceFactory, ServiceNotStartedError, UnsupportedOperationError
from agentmem.services.memory import ReMePersonalMemoryService, ReMeTaskMemoryService
from agentmem.services.utils import id_key
from tests.helpers import text_message, texts

FLOW_VARIABLES = (
    "FLOW_LLM_API_KEY",
    "FLOW_LLM_BASE_URL",
    "FLOW_EMBEDDING_API_KEY",
    "FLOW_EMBEDDING_BASE_URL",
)
DIMENSION = 1024


@pytest.fixture
def no_flow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FLOW_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_flow_environment")
@pytest.mark.parametrize("service_class", [ReMePersonalMemoryService, ReMeTaskMemoryService])
def test_endpoints_are_required(service_class: type[ReMePersonalMemoryService]) -> None:
    with pytest.raises(ValueError, match="FLOW_LLM_API_KEY, FLOW_LLM_BASE_URL"):
        service_class()
    with pytest.raises(ValueError, match=r"^(?!.*FLOW_LLM_API_KEY).*FLOW_EMBEDDING_API_KEY"):
        service_class(llm_api_key="k", llm_api_base="http://127.0.0.1:9/v1")


def test_settings_must_be_key_value(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FLOW_VARIABLES:
        monkeypatch.setenv(name, "x")
    with pytest.raises(ValueError, match="key=value"):
        ReMePersonalMemoryService("not a setting")


@pytest.mark.usefixtures("no_flow_environment")
def test_factory_passes_the_environment() -> None:
    environ = {
        "MEMORY_REME_PERSONAL_LLM_API_KEY": "k",
        "MEMORY_REME_PERSONAL_LLM_API_BASE": "http://127.0.0.1:9/v1",
    }
    with pytest.raises(ValueError) as error:
        MemoryServiceFactory.create("reme_personal", environ=environ)
    assert "FLOW_EMBEDDING_BASE_URL" in str(error.value)
    assert "FLOW_LLM_BASE_URL" not in str(error.value)


class ModelStandIn(BaseHTTPRequestHandler):
    """An OpenAI-compatible API: fixed unit embeddings; every chat answer is ``[]``."""

    paths: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``paths`` instead."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        self.paths.append(self.path)
        if self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vector = [DIMENSION**-0.5] * DIMENSION
            answer: dict[str, Any] = {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector}
                    for i in range(len(inputs))
                ],
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        else:
            answer = {
                "id": "chat-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "[]"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ModelStandIn]]:
    pytest.importorskip("reme_ai")
    handler = type("Handler", (ModelStandIn,), {"paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/v1"
    for name, value in zip(FLOW_VARIABLES, ("k", base, "k", base), strict=True):
        monkeypatch.setenv(name, value)
    # ReMe writes its logs and its local store under the working directory.
    monkeypatch.chdir(tmp_path)
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _put_memories(user_id: str, contents: list[tuple[str, str]]) -> None:
    """Store memories the way ReMe's summary flow does, in ReMe's own vector store."""
    from flowllm.core.context import C
    from reme_ai.schema.memory import PersonalMemory

    workspace = f"agentmem_{id_key(user_id)}"
    nodes = [
        PersonalMemory(
            workspace_id=workspace, content=content, time_created=created, target="user"
        ).to_vector_node()
        for content, created in contents
    ]
    await C.vector_store_dict["default"].async_insert(nodes, workspace)


async def test_lifecycle_list_search_and_delete(models: type[ModelStandIn]) -> None:
    service = ReMePersonalMemoryService(vector_store_backend="local")
    with pytest.raises(ServiceNotStartedError):
        await service.list_memory("alice")
    async with service:
        assert await service.health() is True
        await service.add_memory("alice", [text_message("I play tennis on Sundays")])
        assert "/v1/chat/completions" in models.paths  # the summary flow asked the LLM
        assert await service.list_memory("alice") == []
        await _put_memories(
            "alice",
            [
                ("Alice plays tennis on Sundays", "2026-01-02 10:00:00"),
                ("Alice likes green tea", "2026-01-01 09:00:00"),
            ],
        )
        await _put_memories("bob", [("Bob plays chess", "2026-01-01 09:00:00")])
        with pytest.raises(UnsupportedOperationError):
            await service.delete_memory("alice", "some-session")
    # A new service reads what the store holds: nothing was kept in process memory.
    async with ReMePersonalMemoryService(vector_store_backend="local") as again:
        listed = await again.list_memory("alice")
        assert texts(listed) == ["Alice likes green tea", "Alice plays tennis on Sundays"]
        assert listed[0].role == "assistant"
        hits = await again.search_memory_hits("alice", "tennis")
        assert [hit.message.get_text_content() for hit in hits] == ["Alice plays tennis on Sundays"]
        [first, _] = await again.list_memory_records("alice")
        # ReMe keeps no session and writes its own times, in local time.
        assert first.session_id == "default"
        assert first.created_at == datetime(2026, 1, 1, 9).astimezone(UTC)
        with pytest.raises(UnsupportedOperationError):
            await again.list_memory("alice", {"session_id": "s"})
        with pytest.raises(UnsupportedOperationError):
            await again.search_memory("alice", "tennis", {"session_id": "s"})
        with pytest.raises(UnsupportedOperationError):
            await again.list_session_ids("alice")
        with pytest.raises(UnsupportedOperationError):
            await again.add_memory("alice", [text_message("tea")], created_at=0)
        await again.delete_memory("alice")
        assert await again.list_memory("alice") == []
        assert texts(await again.list_memory("bob")) == ["Bob plays chess"]
    assert await again.health() is False
