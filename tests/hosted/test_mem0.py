"""mem0: configuration, offline failures, and the real platform client's wire format.

The open-source engine runs the whole conformance suite (``tests/hosted_backends.py``).
Here the real ``AsyncMemoryClient`` talks to a local HTTP stand-in of the platform,
which records every request: that pins what the service sends and how it reads the
answers. Only the live tests check the real platform.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytest.importorskip("mem0")

from agentmem import BackendError, MemoryServiceFactory, ServiceNotStartedError
from agentmem.services.memory import Mem0MemoryService
from tests.helpers import text_message, texts

UNREACHABLE = "http://127.0.0.1:9"
# The platform's ping names the key's organisation and project; mem0 sends them along.
PROJECT = {"org_id": "org-1", "project_id": "proj-1"}


class PlatformStandIn(BaseHTTPRequestHandler):
    """The few endpoints of api.mem0.ai the service uses, storing memories as given.

    Like the platform with ``infer=False``: each message becomes one memory carrying
    the request's ``user_id``, ``run_id`` and ``metadata``.
    """

    memories: list[dict[str, Any]]
    requests: list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``requests`` instead."""

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, Any], dict[str, list[str]]]:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        query = parse_qs(url.query)
        self.requests.append((self.command, url.path, body, query))
        return url.path, body, query

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == "Token test-key":
            return True
        self._reply(401, {"detail": "Invalid API key"})
        return False

    def do_GET(self) -> None:
        path, _, _ = self._record()
        if self._authorized() and path == "/v1/ping/":
            self._reply(
                200,
                {
                    "status": "ok",
                    "user_email": "test@example.org",
                    "org_id": "org-1",
                    "project_id": "proj-1",
                },
            )

    def do_POST(self) -> None:
        path, body, query = self._record()
        if not self._authorized():
            return
        if path == "/v1/memories/":
            added = []
            for message in body["messages"]:
                memory = {
                    "id": str(uuid.uuid4()),
                    "memory": message["content"],
                    "user_id": body["user_id"],
                    "run_id": body.get("run_id"),
                    "metadata": body.get("metadata"),
                    "created_at": datetime.now(UTC).isoformat(),
                }
                self.memories.append(memory)
                added.append({"id": memory["id"], "event": "ADD"})
            self._reply(200, added)
        elif path == "/v2/memories/":
            matching = [m for m in self.memories if _matches(m, body["filters"])]
            page, size = int(query["page"][0]), int(query["page_size"][0])
            chunk = matching[(page - 1) * size : page * size]
            has_next = page * size < len(matching)
            self._reply(200, {"count": len(matching), "next": has_next or None, "results": chunk})
        elif path == "/v2/memories/search/":
            words = set(body["query"].lower().split())
            found = [
                {**m, "score": len(words & set(m["memory"].lower().split())) / len(words)}
                for m in self.memories
                if _matches(m, body["filters"])
            ]
            found.sort(key=lambda m: -m["score"])
            self._reply(200, {"results": found[: body["top_k"]]})
        else:
            self._reply(404, {"detail": "not found"})

    def do_DELETE(self) -> None:
        _, _, query = self._record()
        if not self._authorized():
            return
        scope = {k: v[0] for k, v in query.items() if k not in {"org_id", "project_id"}}
        type(self).memories[:] = [
            m for m in self.memories if any(m.get(k) != v for k, v in scope.items())
        ]
        self._reply(200, {"message": "Memories deleted successfully!"})


def _matches(memory: dict[str, Any], filters: dict[str, Any]) -> bool:
    return all(memory.get(key) == value for part in filters["AND"] for key, value in part.items())


@pytest.fixture
def platform() -> Iterator[tuple[str, type[PlatformStandIn]]]:
    handler = type("Handler", (PlatformStandIn,), {"memories": [], "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory": object(), "api_key": "k"},
        {"api_key": "k", "org_id": "o"},
        {"api_key": "k", "infer": "yes"},
        {},
    ],
)
def test_configuration_errors(kwargs: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEM0_API_KEY", raising=False)
    with pytest.raises((ValueError, TypeError)):
        Mem0MemoryService(**kwargs)  # type: ignore[arg-type]


def test_factory_reads_the_environment() -> None:
    service = MemoryServiceFactory.create(
        "mem0",
        environ={"MEMORY_MEM0_API_KEY": "k", "MEMORY_MEM0_HOST": "h", "MEMORY_MEM0_INFER": "0"},
    )
    assert isinstance(service, Mem0MemoryService)
    assert service.infer is False


async def test_start_fails_cleanly_offline() -> None:
    service = Mem0MemoryService(api_key="test-key", host=UNREACHABLE)
    with pytest.raises(ServiceNotStartedError):
        await service.list_memory("u")
    with pytest.raises(
        BackendError, match=re.escape(f"connect to the mem0 platform at {UNREACHABLE} failed")
    ):
        await service.start()
    assert await service.health() is False


async def test_refused_key_fails_start(platform: tuple[str, type[PlatformStandIn]]) -> None:
    host, _ = platform
    service = Mem0MemoryService(api_key="wrong", host=host)
    with pytest.raises(BackendError, match="Invalid API key"):
        await service.start()


async def test_wire_format_with_the_real_client(
    platform: tuple[str, type[PlatformStandIn]],
) -> None:
    host, handler = platform
    original = text_message("I love green tea", metadata={"nested": {"a": 1}})
    async with Mem0MemoryService(api_key="test-key", host=host, infer=False) as service:
        assert await service.health() is True
        await service.add_memory("alice", [original, text_message("Paris trip")], "s1")
        await service.add_memory("*", [text_message("wildcard user tea")], "*")
        hits = await service.search_memory_hits("alice", "green tea", {"top_k": 3})
        listed = await service.list_memory("alice", {"session_id": "s1"})
        await service.delete_memory("alice", "s1")
        assert await service.list_memory("alice") == []
        assert texts(await service.list_memory("*")) == ["wildcard user tea"]

    assert [hit.message.model_dump() for hit in hits] == [original.model_dump()]
    assert hits[0].session_id == "s1"
    assert texts(listed) == ["I love green tea", "Paris trip"]

    calls = [(method, path) for method, path, _, _ in handler.requests]
    assert calls[0] == ("GET", "/v1/ping/")
    adds = [body for method, path, body, _ in handler.requests if path == "/v1/memories/"]
    assert [method for method, path in calls if path == "/v1/memories/"].count("POST") == 3
    first = adds[0]
    assert first["messages"] == [{"role": "user", "content": "I love green tea"}]
    assert (first["user_id"], first["run_id"], first["infer"]) == ("alice", "s1", False)
    assert first["output_format"] == "v1.1"
    assert json.loads(first["metadata"]["agentmem_message"]) == json.loads(
        original.model_dump_json()
    )
    # mem0 reads "*" as "any user": the service escapes it.
    assert (adds[2]["user_id"], adds[2]["run_id"]) == ("agentmem-escaped:*", "agentmem-escaped:*")
    [search] = [body for _, path, body, _ in handler.requests if path == "/v2/memories/search/"]
    assert search == {
        "query": "green tea",
        "filters": {"AND": [{"user_id": "alice"}]},
        "top_k": 100,
        **PROJECT,
    }
    [health, listing, *_] = [
        (body, query) for _, path, body, query in handler.requests if path == "/v2/memories/"
    ]
    # health() is a real round trip: one page of one memory of a user never written.
    assert health == (
        {"filters": {"AND": [{"user_id": "agentmem-health"}]}, **PROJECT},
        {"page": ["1"], "page_size": ["1"]},
    )
    assert listing == (
        {"filters": {"AND": [{"user_id": "alice"}, {"run_id": "s1"}]}, **PROJECT},
        {"page": ["1"], "page_size": ["100"]},
    )
    [delete] = [query for method, _, _, query in handler.requests if method == "DELETE"]
    assert delete == {
        "user_id": ["alice"],
        "run_id": ["s1"],
        "org_id": ["org-1"],
        "project_id": ["proj-1"],
    }


async def test_inferred_facts_come_back_as_assistant_messages(
    platform: tuple[str, type[PlatformStandIn]],
) -> None:
    host, handler = platform
    async with Mem0MemoryService(api_key="test-key", host=host) as service:
        await service.add_memory("bob", [text_message("I moved to Oslo"), text_message("ok")])
        [add] = [body for _, path, body, _ in handler.requests if path == "/v1/memories/"]
        assert add["infer"] is True
        assert len(add["messages"]) == 2
        [fact, _] = await service.list_memory("bob")
    assert fact.role == "assistant"
    assert fact.get_text_content() == "I moved to Oslo"
    assert fact.metadata == {"mem0_id": fact.id}


@pytest.mark.parametrize("infer", [False, True])
async def test_sessions_and_creation_times(
    platform: tuple[str, type[PlatformStandIn]], infer: bool
) -> None:
    host, handler = platform
    async with Mem0MemoryService(api_key="test-key", host=host, infer=infer) as service:
        await service.add_memory("alice", [text_message("old tea")], "s2", created_at=86_400)
        await service.add_memory("alice", [text_message("new tea")], "s1")
        await service.add_memory("alice", [text_message("more tea")], "s2")
        assert await service.list_session_ids("alice") == ["s2", "s1"]
        [old, *_] = await service.list_memory_records("alice")
        assert (old.session_id, old.created_at) == ("s2", datetime(1970, 1, 2, tzinfo=UTC))
        found = await service.search_memory("alice", "tea", {"end_time": 86_400})
        assert texts(found) == ["old tea"]
    [first, *_] = [body for _, path, body, _ in handler.requests if path == "/v1/memories/"]
    assert first["metadata"]["agentmem_created_at"] == 86_400
