"""Registering a sandbox type of one's own."""

from __future__ import annotations

import pytest

from agentmem.services.sandbox import (
    Sandbox,
    SandboxEngine,
    ShellResult,
    register_sandbox_type,
    sandbox_types,
    tool,
)
from agentmem.services.sandbox_service import SandboxService
from tests.sandbox.conftest import LIMITS


class WordCountEngine(SandboxEngine):
    """A toy type: counts words with ``wc`` inside the sandbox."""

    @tool
    async def count_words(self, text: str) -> int:
        (self.context.work_dir / "in.txt").write_text(text)
        done: ShellResult = await self.context.run(["/bin/sh", "-c", "wc -w < in.txt"])
        return int(done.stdout)

    @tool
    def echo(self, value: dict[str, int]) -> dict[str, int]:
        return value


async def test_custom_type() -> None:
    register_sandbox_type("wordcount", WordCountEngine, replace=True)
    assert "wordcount" in sandbox_types()
    with pytest.raises(ValueError, match="already registered"):
        register_sandbox_type("wordcount", WordCountEngine)
    async with SandboxService(limits=LIMITS) as service:
        [sandbox] = await service.connect("custom", None, ["wordcount"])
        assert type(sandbox) is Sandbox and sandbox.tools == ["count_words", "echo"]
        assert await sandbox.acall("count_words", text="one two three") == 3
        assert sandbox.call("echo", value={"a": 1}) == {"a": 1}


def test_tools_that_cannot_be_called_by_name_are_refused_at_registration() -> None:
    class Spread(SandboxEngine):
        @tool
        def total(self, *values: int) -> int:
            return sum(values)

    with pytest.raises(TypeError, match="by keyword"):
        register_sandbox_type("spread", Spread)
    assert "spread" not in sandbox_types()
