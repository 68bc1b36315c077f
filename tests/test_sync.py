"""The synchronous facade: results, errors, lifecycle, with and without a running loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from agentmem import (
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryHit,
    MemoryRecord,
    MemoryService,
    Message,
    Session,
    SessionHistoryService,
    StateService,
)
from agentmem.services.base import ServiceWithLifecycleManager
from agentmem.sync import (
    SyncMemoryService,
    SyncService,
    SyncSessionHistoryService,
    SyncStateService,
    run,
)
from tests.helpers import text_message, texts


async def _thread_name() -> str:
    return threading.current_thread().name


def test_run_returns_the_result_without_a_running_loop() -> None:
    assert run(asyncio.sleep(0, result=42)) == 42
    assert run(_thread_name()) == "agentmem-sync"


async def test_run_works_while_the_callers_loop_is_running() -> None:
    # The situation of a Jupyter cell: this thread runs a loop and calls run() anyway.
    assert asyncio.get_running_loop().is_running()
    assert run(asyncio.sleep(0, result="done")) == "done"


def test_run_accepts_any_awaitable() -> None:
    class Ready:
        def __await__(self) -> Any:
            return asyncio.sleep(0, result="ready").__await__()

    assert run(Ready()) == "ready"


def test_run_propagates_the_exception_unchanged() -> None:
    async def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        run(fail())


def test_run_times_out_and_cancels() -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError, match=r"0\.05 seconds"):
        run(slow(), timeout=0.05)
    assert cancelled.wait(5)


def test_run_refuses_to_wait_for_itself() -> None:
    async def nested() -> str:
        with pytest.raises(RuntimeError, match="await the coroutine instead"):
            run(asyncio.sleep(0))
        return "refused"

    assert run(nested()) == "refused"


def test_memory_service_synchronously() -> None:
    with SyncMemoryService(InMemoryMemoryService()) as memory:
        assert memory.health() is True
        memory.add_memory("alice", [text_message("I adopted a cat named Miso")], "s1")
        memory.add_memory("alice", {"role": "user", "content": [{"type": "text", "text": "x"}]})
        found = memory.search_memory("alice", "what is my cat called?")
        assert texts(found) == ["I adopted a cat named Miso"]
        (hit,) = memory.search_memory_hits("alice", "cat")
        assert isinstance(hit, MemoryHit) and hit.session_id == "s1"
        assert len(memory.list_memory("alice", {"page_size": 1, "page_num": 2})) == 1
        memory.delete_memory("alice", "s1")
        assert texts(memory.list_memory("alice")) == ["x"]
        memory.delete_memory("alice")
        assert memory.list_memory("alice") == []


def test_memory_records_sessions_and_deletion_synchronously() -> None:
    created = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with SyncMemoryService(InMemoryMemoryService()) as memory:
        memory.add_memory("alice", [text_message("old")], "s1", created_at=created)
        memory.add_memory("alice", [text_message("new")], "s2")
        memory.add_memory("bob", [text_message("bob's")])
        (first, second) = memory.list_memory_records("alice")
        assert isinstance(first, MemoryRecord)
        assert (first.session_id, first.created_at) == ("s1", created)
        assert texts([first.message, second.message]) == ["old", "new"]
        assert memory.list_session_ids("alice") == ["s1", "s2"]
        assert memory.get_query_text(text_message("the query")) == "the query"
        memory.delete_user_memory("alice")
        assert memory.list_memory("alice") == []
        memory.clear_all_memory()
        assert memory.list_memory("bob") == []


def test_session_history_service_synchronously() -> None:
    with SyncSessionHistoryService(InMemorySessionHistoryService()) as sessions:
        session = sessions.create_session("bob", "chat")
        assert isinstance(session, Session)
        sessions.append_message(session, text_message("hello"))
        sessions.append_message(session, [{"role": "assistant", "content": []}])
        stored = sessions.get_session("bob", "chat")
        assert len(stored.messages) == 2 and all(isinstance(m, Message) for m in stored.messages)
        assert [s.id for s in sessions.list_sessions("bob")] == ["chat"]
        sessions.delete_session("bob", "chat")
        assert sessions.list_sessions("bob") == []
        sessions.create_session("bob", "one")
        sessions.create_session("bob", "two")
        sessions.delete_user_sessions("bob")
        assert sessions.list_sessions("bob") == []


def test_state_service_synchronously() -> None:
    with SyncStateService(InMemoryStateService()) as states:
        assert states.save_state("carol", {"step": 1}) == 1
        assert states.save_state("carol", {"step": 2}, session_id="s") == 1
        assert states.export_state("carol") == {"step": 1}
        assert states.list_states("carol", "s") == [1]
        assert states.list_session_ids("carol") == ["default", "s"]
        states.delete_state("carol", "s", 1)
        assert states.export_state("carol", "s") is None


@pytest.mark.parametrize(
    ("facade", "service_class"),
    [
        (SyncMemoryService, MemoryService),
        (SyncSessionHistoryService, SessionHistoryService),
        (SyncStateService, StateService),
    ],
)
def test_typed_facades_spell_out_every_public_method(
    facade: type[SyncService[Any]], service_class: type[Any]
) -> None:
    public = {
        name
        for name, value in inspect.getmembers(service_class, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    # Defined on the class (typed, documented), not only reached through __getattr__.
    missing = {name for name in public if not hasattr(facade, name)}
    assert not missing, f"{facade.__name__} lacks {sorted(missing)}"
    for name in public:
        assert inspect.signature(getattr(facade, name)) == inspect.signature(
            getattr(service_class, name)
        )
        assert getattr(facade, name).__doc__ == getattr(service_class, name).__doc__


def test_errors_of_a_service_propagate() -> None:
    memory = SyncMemoryService(InMemoryMemoryService())
    with pytest.raises(ValueError, match="user_id"):
        memory.add_memory("  ", [text_message("x")])
    with pytest.raises(ValueError):
        memory.list_memory("alice", {"page_sise": 3})


class _Counter(ServiceWithLifecycleManager):
    """A service with a backend-specific coroutine method and a plain attribute."""

    label = "counter"

    def __init__(self) -> None:
        self.count = 0
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def health(self) -> bool:
        return self.running

    async def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count

    def describe(self) -> str:
        return f"{self.label}={self.count}"


def test_generic_wrapper_exposes_every_method() -> None:
    counter = _Counter()
    wrapped = SyncService(counter)
    with wrapped:
        assert counter.running and wrapped.health() is True
        assert wrapped.increment(by=2) == 2
        assert wrapped.describe() == "counter=2"
        assert wrapped.label == "counter"
    assert not counter.running
    assert repr(wrapped).startswith("SyncService(")
    with pytest.raises(AttributeError):
        wrapped.no_such_method  # noqa: B018


def test_wrapper_refuses_what_is_not_a_service() -> None:
    with pytest.raises(TypeError, match="expected an agentmem service"):
        SyncService(object())  # type: ignore[type-var]
