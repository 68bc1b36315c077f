"""Tablestore backends: what runs for real offline, and the row layout against the fakes.

The conformance suite runs both services over ``tests/hosted/fakes.py``; these tests
cover the rest: the real client and SDK types, configuration errors, factory wiring,
``start()`` without a reachable endpoint, and what the rows look like.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("tablestore_for_agent_memory")

import tablestore
from tablestore_for_agent_memory.base.base_knowledge_store import Document
from tablestore_for_agent_memory.base.base_memory_store import Message as StoreMessage
from tablestore_for_agent_memory.util.tablestore_helper import TablestoreHelper

from agentmem import (
    BackendError,
    CorruptDataError,
    MemoryServiceFactory,
    ServiceNotStartedError,
    SessionHistoryServiceFactory,
)
from agentmem.limits import MAX_ID_LENGTH
from agentmem.services.memory import TablestoreMemoryService
from agentmem.services.session_history import TablestoreSessionHistoryService
from agentmem.services.tablestore_memory_service import SearchStrategy
from agentmem.services.utils.tablestore_service_utils import (
    create_tablestore_client,
    id_key,
)
from tests.helpers import text_message, texts
from tests.hosted.fakes import (
    FakeAsyncKnowledgeStore,
    FakeAsyncMemoryStore,
    HashingEmbedder,
)

# A closed local port: connections are refused at once, nothing leaves the machine.
UNREACHABLE = "http://127.0.0.1:9"
CREDENTIALS = {
    "end_point": UNREACHABLE,
    "instance_name": "agentmem-test",
    "access_key_id": "id",
    "access_key_secret": "secret",
}


class StoreSpy:
    """Remembers the store a service builds, so a test can look at its rows."""

    def __init__(self, store_class: type) -> None:
        self.store_class = store_class
        self.store: object = None
        self.kwargs: dict[str, object] = {}

    def __call__(self, **kwargs: object) -> object:
        self.kwargs = kwargs
        self.store = self.store_class(**kwargs)
        return self.store


def test_create_tablestore_client_builds_the_real_client_offline() -> None:
    client = create_tablestore_client(**CREDENTIALS)
    assert isinstance(client, tablestore.AsyncOTSClient)


def test_create_tablestore_client_needs_a_url() -> None:
    with pytest.raises(ValueError, match="end_point must be the instance's URL"):
        create_tablestore_client(**{**CREDENTIALS, "end_point": "your_endpoint"})


@pytest.mark.parametrize("missing", sorted(CREDENTIALS))
def test_create_tablestore_client_needs_every_credential(missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        create_tablestore_client(**{**CREDENTIALS, missing: " "})


def test_spec_construction_with_a_client_does_not_connect() -> None:
    client = tablestore.AsyncOTSClient(
        "https://<endpoint>", "<access_key_id>", "<secret>", "<instance_name>"
    )
    service = TablestoreMemoryService(tablestore_client=client)
    assert service.search_strategy is SearchStrategy.FULL_TEXT


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"tablestore_client": object(), **CREDENTIALS},
        {"end_point": UNREACHABLE},
        {**CREDENTIALS, "search_strategy": SearchStrategy.VECTOR},
        {**CREDENTIALS, "search_strategy": "keyword"},
        {**CREDENTIALS, "embedder": object()},
        {**CREDENTIALS, "vector_dimension": 0},
        {**CREDENTIALS, "table_name": ""},
        {**CREDENTIALS, "end_point": "your_endpoint"},
    ],
)
def test_memory_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        TablestoreMemoryService(**kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"end_point": UNREACHABLE}, {**CREDENTIALS, "x": 1}])
def test_session_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        TablestoreSessionHistoryService(**kwargs)


def test_factories_read_the_environment() -> None:
    environ = {
        "MEMORY_BACKEND": "tablestore",
        "MEMORY_TABLESTORE_END_POINT": UNREACHABLE,
        "MEMORY_TABLESTORE_INSTANCE_NAME": "inst",
        "MEMORY_TABLESTORE_ACCESS_KEY_ID": "id",
        "MEMORY_TABLESTORE_ACCESS_KEY_SECRET": "secret",
        "MEMORY_TABLESTORE_VECTOR_DIMENSION": "8",
        "MEMORY_TABLESTORE_TABLE_NAME": "custom_memory",
    }
    memory = MemoryServiceFactory.create(environ=environ)
    assert isinstance(memory, TablestoreMemoryService)
    assert memory._dimension == 8
    assert memory._table_name == "custom_memory"
    sessions = SessionHistoryServiceFactory.create(
        "tablestore",
        environ={f"SESSION_HISTORY_TABLESTORE_{k.upper()}": v for k, v in CREDENTIALS.items()},
    )
    assert isinstance(sessions, TablestoreSessionHistoryService)


async def test_memory_start_fails_cleanly_when_unreachable() -> None:
    service = TablestoreMemoryService(**CREDENTIALS)
    with pytest.raises(ServiceNotStartedError):
        await service.list_memory("u1")
    with pytest.raises(BackendError, match="create the memory table failed"):
        await service.start()
    assert service._tablestore.client is None  # the client it built was closed
    assert await service.health() is False


async def test_sessions_start_fails_cleanly_when_unreachable() -> None:
    service = TablestoreSessionHistoryService(**CREDENTIALS)
    with pytest.raises(ServiceNotStartedError):
        await service.list_sessions("u1")
    with pytest.raises(BackendError, match="create the session tables failed"):
        await service.start()
    assert await service.health() is False


async def test_borrowed_client_is_not_closed() -> None:
    client = create_tablestore_client(**CREDENTIALS)
    service = TablestoreMemoryService(tablestore_client=client)
    with pytest.raises(BackendError):
        await service.start()
    assert service._tablestore.client is client
    await client.close()


async def test_rows_hold_only_scalars_and_hashed_keys() -> None:
    message = text_message(
        "Running shoes", metadata={"nested": {"a": [1]}}, usage={"input_tokens": 3}
    )
    with pytest.raises(RuntimeError, match="Unsupported column type"):
        # Why the message is stored as JSON: the SDK refuses dict metadata values.
        TablestoreHelper.meta_data_to_ots_columns({"metadata": message.metadata})
    embedder = HashingEmbedder(16)
    spy = StoreSpy(FakeAsyncKnowledgeStore)
    async with TablestoreMemoryService(store_factory=spy, embedder=embedder) as service:
        await service.add_memory("alice", [message], session_id="s")
        [row] = spy.store._fake_rows.values()  # type: ignore[attr-defined]
        assert row.tenant_id == id_key("alice")
        assert row.text == "run shoe"
        assert row.embedding is None
        assert embedder.calls == 0  # full-text mode never embeds
        assert all(isinstance(v, str | int | float | bool) for v in row.metadata.values())
        assert row.metadata["session_key"] == id_key("s")
        [stored] = await service.list_memory("alice")
        assert stored.model_dump() == message.model_dump()
    assert spy.kwargs["enable_multi_tenant"] is True


async def test_vector_mode_embeds_documents_and_queries() -> None:
    embedder = HashingEmbedder(16)
    spy = StoreSpy(FakeAsyncKnowledgeStore)
    service = TablestoreMemoryService(
        store_factory=spy, search_strategy="vector", embedder=embedder
    )
    async with service:
        await service.add_memory("u", [text_message("green tea"), text_message("black coffee")])
        assert embedder.calls == 1
        hits = await service.search_memory_hits("u", "tea please")
        assert embedder.calls == 2
        assert texts([hit.message for hit in hits]) == ["green tea"]
        assert 0.5 < hits[0].score <= 1.0
        assert spy.kwargs["vector_dimension"] == 16


async def test_post_filters_read_further_pages() -> None:
    spy = StoreSpy(FakeAsyncKnowledgeStore)
    async with TablestoreMemoryService(store_factory=spy) as service:
        for start in (0, 600):
            await service.add_memory(
                "u",
                [
                    text_message(f"tea {i}", metadata={"keep": i == 150})
                    for i in range(start, start + 600)
                ],
            )
        found = await service.search_memory("u", "tea", {"metadata": {"keep": True}})
        assert texts(found) == ["tea 150"]
        listed = await service.list_memory("u", {"page_num": 2, "page_size": 600})
        assert texts(listed) == [f"tea {i}" for i in range(600, 1200)]


async def test_corrupt_rows_raise() -> None:
    spy = StoreSpy(FakeAsyncKnowledgeStore)
    async with TablestoreMemoryService(store_factory=spy) as service:
        store = spy.store
        await store.put_document(  # type: ignore[attr-defined]
            Document(
                document_id="0",
                tenant_id=id_key("u"),
                text="tea",
                metadata={"message": "not json", "session_id": "s", "created_at": 1.0},
            )
        )
        with pytest.raises(CorruptDataError):
            await service.list_memory("u")


async def test_lifecycle_is_idempotent() -> None:
    spy = StoreSpy(FakeAsyncMemoryStore)
    service = TablestoreSessionHistoryService(store_factory=spy)
    assert await service.health() is False
    await service.start()
    await service.start()
    assert spy.store.requests["init_table"] == 1  # type: ignore[attr-defined]
    assert await service.health() is True
    await service.stop()
    await service.stop()
    assert await service.health() is False


async def test_session_rows_are_keyed_by_hashes() -> None:
    spy = StoreSpy(FakeAsyncMemoryStore)
    # 2 KB of UTF-8: more than a Tablestore primary-key column holds.
    long_id = "é" * MAX_ID_LENGTH
    async with TablestoreSessionHistoryService(store_factory=spy) as service:
        session = await service.create_session("alice", long_id)
        await service.append_message(session, text_message("hi", metadata={"deep": {"a": 1}}))
        [row] = spy.store._fake_sessions.values()  # type: ignore[attr-defined]
        assert (row.user_id, row.session_id) == (id_key("alice"), id_key(long_id))
        [message_row] = spy.store._fake_messages.values()  # type: ignore[attr-defined]
        assert message_row.session_id == id_key("alice", long_id)
        await service.create_session("alice", long_id)  # resets the session
        assert (await service.get_session("alice", long_id)).messages == []


def _busy() -> tablestore.OTSServiceError:
    return tablestore.OTSServiceError(503, "OTSServerBusy", "server busy", "fake-request")


class FailingKnowledgeStore(FakeAsyncKnowledgeStore):
    """Refuses the third row write of its life, as an overloaded server would."""

    async def put_document(self, document: Document) -> None:
        if self.requests["put_document"] == 2:
            self.requests["put_document"] += 1
            raise _busy()
        await super().put_document(document)


class FailingMemoryStore(FakeAsyncMemoryStore):
    """Refuses the third message write of its life."""

    async def put_message(self, message: StoreMessage) -> None:
        if self.requests["put_message"] == 2:
            self.requests["put_message"] += 1
            raise _busy()
        await super().put_message(message)


class BusyKnowledgeStore(FakeAsyncKnowledgeStore):
    """Opens, then refuses every search."""

    async def search_documents(self, *args: Any, **kwargs: Any) -> Any:
        raise _busy()


class SilentKnowledgeStore(FakeAsyncKnowledgeStore):
    """Opens, then never answers a search."""

    async def search_documents(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)


async def test_a_failed_add_stores_nothing() -> None:
    spy = StoreSpy(FailingKnowledgeStore)
    async with TablestoreMemoryService(store_factory=spy) as service:
        with pytest.raises(BackendError, match="OTSServerBusy") as error:
            await service.add_memory("u", [text_message(f"tea {i}") for i in range(5)])
        assert isinstance(error.value.__cause__, tablestore.OTSServiceError)
        assert spy.store._fake_rows == {}  # type: ignore[attr-defined]
        assert await service.list_memory("u") == []


async def test_a_failed_append_appends_nothing() -> None:
    spy = StoreSpy(FailingMemoryStore)
    async with TablestoreSessionHistoryService(store_factory=spy) as service:
        session = await service.create_session("u", "s")
        await service.append_message(session, text_message("kept"))
        with pytest.raises(BackendError, match="OTSServerBusy"):
            await service.append_message(session, [text_message("a"), text_message("b")])
        assert texts((await service.get_session("u", "s")).messages) == ["kept"]


async def test_health_is_a_bounded_round_trip() -> None:
    async with TablestoreMemoryService(store_factory=BusyKnowledgeStore) as service:
        assert await service.health() is False
    async with TablestoreMemoryService(store_factory=SilentKnowledgeStore) as service:
        service.health_timeout = 0.05
        started = time.monotonic()
        assert await service.health() is False
        assert time.monotonic() - started < 1


async def test_a_recreated_session_keeps_its_place() -> None:
    async with TablestoreSessionHistoryService(store_factory=FakeAsyncMemoryStore) as service:
        for session_id in ("one", "two", "one"):
            await service.create_session("u", session_id)
        assert [session.id for session in await service.list_sessions("u")] == ["one", "two"]


async def test_sessions_and_creation_times_come_from_the_rows() -> None:
    async with TablestoreMemoryService(store_factory=FakeAsyncKnowledgeStore) as service:
        await service.add_memory("u", [text_message("old tea")], "s2", created_at=86_400)
        await service.add_memory("u", [text_message("new tea")], "s1")
        await service.add_memory("u", [text_message("more tea")], "s2")
        assert await service.list_session_ids("u") == ["s2", "s1"]
        [old, *_] = await service.list_memory_records("u")
        assert (old.session_id, old.created_at) == ("s2", datetime(1970, 1, 2, tzinfo=UTC))
        found = await service.search_memory("u", "tea", {"end_time": 86_400})
        assert texts(found) == ["old tea"]
        await service.clear_all_memory()
        assert await service.list_session_ids("u") == []
