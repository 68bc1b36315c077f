"""Sandbox types as they run next to the service: the ``base`` and ``filesystem`` engines.

An engine implements a sandbox type's tools (methods marked with :func:`tool`); each
tool's method is its one definition (see :mod:`.calls`). Callers never hold engines: they
hold handles (:mod:`agentmem.services.sandbox.handles`) that reach an engine in this
process or, through the sandbox server, in another one, so tool arguments and results
travel as JSON-compatible data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import Field

from agentmem.errors import SandboxError
from agentmem.services.sandbox.calls import call_by_name, tool, tool_names
from agentmem.services.sandbox.context import SandboxContext
from agentmem.services.sandbox.fs import ConfinedFilesystem
from agentmem.services.sandbox.kernel import SandboxKernel
from agentmem.services.sandbox.models import CellResult, ShellResult
from agentmem.services.sandbox.shell import shell_path

__all__ = ["BaseSandboxEngine", "FilesystemSandboxEngine", "SandboxEngine", "Timeout"]

#: The wall-clock limit a caller may ask for one call: positive seconds, or None for the
#: service's ``limits.timeout_seconds``, which it never exceeds.
Timeout = Annotated[float, Field(gt=0, allow_inf_nan=False)] | None


class SandboxEngine:
    """Base of sandbox types. Subclass it, mark tools with :func:`tool`, register the type.

    Tools may be sync or async; they take JSON-compatible arguments by keyword, validated
    against their annotations, and return JSON-compatible values or pydantic models.
    Sync tools run in the service's tool threads, a few at a time per session, and are
    given up after ``limits.timeout_seconds`` (:meth:`SandboxContext.run_blocking`). Errors
    the caller should read are agentmem's own (:class:`SandboxError`,
    :class:`InvalidArgumentError`...): the sandbox server answers any other exception as an
    internal error without its text. Override :meth:`close` to release what the engine
    started.
    """

    sandbox_type: ClassVar[str] = ""

    def __init__(self, context: SandboxContext) -> None:
        self.context = context
        self.closed = False

    @classmethod
    def tool_names(cls) -> list[str]:
        return list(tool_names(cls))

    async def invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run tool ``name`` and return its result as JSON-compatible data."""
        if self.closed:
            raise SandboxError(f"sandbox {self.context.sandbox_id} was released")
        owner = f"sandbox type {self.context.sandbox_type!r}"
        what = f"{name} in sandbox {self.context.sandbox_id}"

        async def run_blocking(func: Callable[[], Any]) -> Any:
            return await self.context.run_blocking(func, what)

        return await call_by_name(
            type(self), self, name, arguments, owner=owner, run_blocking=run_blocking
        )

    async def close(self) -> None:
        """Release what the engine started (processes); the directories go with the session.

        ``closed`` is already true when this runs, so no new tool call starts anything.
        """


class BaseSandboxEngine(SandboxEngine):
    """``base``: a persistent IPython kernel, started on the first cell, and a shell."""

    sandbox_type = "base"

    def __init__(self, context: SandboxContext) -> None:
        super().__init__(context)
        self._kernel: SandboxKernel | None = None

    def _get_kernel(self) -> SandboxKernel:
        if self._kernel is None:
            uid = self.context.uid if self.context.isolation.kernel_drops_uid else None
            self._kernel = SandboxKernel(self.context, uid=uid)
        return self._kernel

    # ``timeout`` is part of the tool API (a limit reported in the result, not raised), so
    # ASYNC109's advice to use asyncio.timeout() does not apply here and below.
    @tool
    async def run_ipython_cell(self, code: str, timeout: Timeout = None) -> CellResult:  # noqa: ASYNC109
        """Run ``code`` in the sandbox's IPython kernel (variables survive between cells).

        ``timeout`` (seconds) may shorten the service's ``limits.timeout_seconds`` for this
        cell, never lengthen it.
        """
        return await self._get_kernel().execute(code, self.context.seconds(timeout))

    @tool
    async def run_shell_command(self, command: str, timeout: Timeout = None) -> ShellResult:  # noqa: ASYNC109
        """Run ``command`` with bash (sh if absent) in the sandbox's directory.

        ``timeout`` (seconds) may shorten the service's ``limits.timeout_seconds`` for this
        command, never lengthen it.
        """
        return await self.context.run([shell_path(), "-c", command], timeout)

    async def close(self) -> None:
        if self._kernel is not None:
            await self._kernel.close()


class FilesystemSandboxEngine(BaseSandboxEngine, ConfinedFilesystem):
    """``filesystem``: the ``base`` tools plus the file operations of
    :class:`~agentmem.services.sandbox.fs.ConfinedFilesystem`, confined to the work dir."""

    sandbox_type = "filesystem"

    def __init__(self, context: SandboxContext) -> None:
        BaseSandboxEngine.__init__(self, context)
        ConfinedFilesystem.__init__(
            self,
            context.work_dir,
            owner=context.uid,
            max_read_bytes=context.limits.max_output_bytes,
            max_write_bytes=context.limits.file_size_bytes,
        )
