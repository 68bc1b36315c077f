"""Service factories: backends by name, from the environment, custom registration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typing_extensions import override

from agentmem import (
    InMemoryMemoryService,
    InMemorySessionHistoryService,
    InMemoryStateService,
    MemoryServiceFactory,
    SessionHistoryServiceFactory,
    StateServiceFactory,
)


class TunedMemoryService(InMemoryMemoryService):
    """An in-memory service with typed constructor parameters to read from the environment."""

    def __init__(
        self,
        namespace: str = "default",
        shards: int = 1,
        ratio: float = 0.5,
        enabled: bool = False,
        tags: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.namespace = namespace
        self.shards = shards
        self.ratio = ratio
        self.enabled = enabled
        self.tags = tags

    @override
    async def health(self) -> bool:
        return self.enabled


@pytest.fixture
def tuned() -> Iterator[str]:
    """Register ``TunedMemoryService`` as "tuned" for one test."""
    MemoryServiceFactory.register("Tuned", TunedMemoryService)
    yield "tuned"
    MemoryServiceFactory._backends.pop("tuned")


def test_in_memory_is_the_default() -> None:
    assert isinstance(MemoryServiceFactory.create(environ={}), InMemoryMemoryService)
    assert isinstance(
        SessionHistoryServiceFactory.create(environ={}), InMemorySessionHistoryService
    )
    assert isinstance(StateServiceFactory.create(environ={}), InMemoryStateService)


def test_backend_by_name_is_case_insensitive() -> None:
    assert isinstance(MemoryServiceFactory.create(" In_Memory "), InMemoryMemoryService)


def test_known_backends() -> None:
    assert set(MemoryServiceFactory.backends()) >= {
        "in_memory",
        "redis",
        "tablestore",
        "mem0",
        "reme_personal",
        "reme_task",
    }
    assert set(SessionHistoryServiceFactory.backends()) >= {"in_memory", "redis", "tablestore"}
    assert set(StateServiceFactory.backends()) >= {"in_memory", "redis"}
    assert MemoryServiceFactory.backends() == sorted(MemoryServiceFactory.backends())


def test_backend_named_by_the_environment() -> None:
    service = StateServiceFactory.create(environ={"STATE_BACKEND": "in_memory"})
    assert isinstance(service, InMemoryStateService)


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown MemoryService backend 'nope'") as info:
        MemoryServiceFactory.create("nope")
    assert "in_memory" in str(info.value) and "redis" in str(info.value)
    with pytest.raises(ValueError, match="known backends: in_memory"):
        StateServiceFactory.create(environ={"STATE_BACKEND": "cassandra"})


def test_environment_values_are_converted_to_parameter_types(tuned: str) -> None:
    service = MemoryServiceFactory.create(
        environ={
            "MEMORY_BACKEND": "tuned",
            "MEMORY_TUNED_NAMESPACE": "prod",
            "MEMORY_TUNED_SHARDS": "4",
            "MEMORY_TUNED_RATIO": "0.25",
            "MEMORY_TUNED_ENABLED": "true",
            "MEMORY_TUNED_TAGS": '["a", "b"]',
            "MEMORY_TUNED_UNRELATED": "ignored",
        }
    )
    assert isinstance(service, TunedMemoryService)
    assert (service.namespace, service.shards, service.ratio) == ("prod", 4, 0.25)
    assert service.enabled is True
    assert service.tags == ["a", "b"]


def test_keyword_arguments_win_over_the_environment(tuned: str) -> None:
    service = MemoryServiceFactory.create(
        tuned, environ={"MEMORY_TUNED_SHARDS": "4", "MEMORY_TUNED_NAMESPACE": "env"}, shards=8
    )
    assert isinstance(service, TunedMemoryService)
    assert (service.shards, service.namespace) == (8, "env")


def test_invalid_environment_value_names_the_variable(tuned: str) -> None:
    with pytest.raises(ValueError, match="MEMORY_TUNED_SHARDS='many'"):
        MemoryServiceFactory.create(tuned, environ={"MEMORY_TUNED_SHARDS": "many"})


def test_os_environ_is_read_by_default(monkeypatch: pytest.MonkeyPatch, tuned: str) -> None:
    monkeypatch.setenv("MEMORY_BACKEND", "tuned")
    monkeypatch.setenv("MEMORY_TUNED_SHARDS", "3")
    service = MemoryServiceFactory.create()
    assert isinstance(service, TunedMemoryService) and service.shards == 3


def test_register_a_dotted_path_imported_on_create() -> None:
    StateServiceFactory.register(
        "alias", "agentmem.services.agent_state.state_service:InMemoryStateService"
    )
    try:
        assert "alias" in StateServiceFactory.backends()
        assert isinstance(StateServiceFactory.create("alias"), InMemoryStateService)
    finally:
        StateServiceFactory._backends.pop("alias")


def test_registration_is_per_factory(tuned: str) -> None:
    assert "tuned" in MemoryServiceFactory.backends()
    assert "tuned" not in StateServiceFactory.backends()


@pytest.mark.parametrize("name", ["", "   ", None])
def test_register_refuses_blank_names(name: object) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        MemoryServiceFactory.register(name, InMemoryMemoryService)  # type: ignore[arg-type]


def test_a_backend_creating_the_wrong_service_is_refused() -> None:
    MemoryServiceFactory.register("wrong", InMemoryStateService)
    try:
        with pytest.raises(TypeError, match="created a InMemoryStateService, not a MemoryService"):
            MemoryServiceFactory.create("wrong")
    finally:
        MemoryServiceFactory._backends.pop("wrong")
