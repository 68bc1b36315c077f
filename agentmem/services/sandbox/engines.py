"""Sandbox types as they run next to the service: the ``base`` and ``filesystem`` engines.

An engine implements a sandbox type's tools (methods marked with :func:`tool`). Callers
never hold engines: they hold handles (:mod:`agentmem.services.sandbox.handles`) that reach
an engine in this process or, through the sandbox server, in another one. Tool arguments
and results therefore travel as JSON-compatible data.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, TypeAdapter

from agentmem.services.sandbox.errors import SandboxError
from agentmem.services.sandbox.fs import ConfinedFilesystem
from agentmem.services.sandbox.isolation import Isolation
from agentmem.services.sandbox.kernel import SandboxKernel
from agentmem.services.sandbox.models import (
    CellResult,
    DirectoryEntry,
    EditOperation,
    FileContent,
    FileInfo,
    SandboxLimits,
    ShellResult,
    TreeNode,
)
from agentmem.services.sandbox.shell import run_sandboxed, shell_path

__all__ = [
    "BaseSandboxEngine",
    "FilesystemSandboxEngine",
    "SandboxContext",
    "SandboxEngine",
    "tool",
]

F = TypeVar("F", bound=Callable[..., Any])
_TOOL_MARK = "__agentmem_sandbox_tool__"
_ANY = TypeAdapter(Any)


def tool(func: F) -> F:
    """Mark an engine method as a tool callable through handles and the sandbox server."""
    setattr(func, _TOOL_MARK, True)
    return func


@dataclass(frozen=True)
class SandboxContext:
    """Where a sandbox lives and how its processes are isolated.

    All sandboxes of one (session, user) share ``work_dir`` (the only directory sandboxed
    code may write besides a private /tmp and its ``run_dir`` subdirectories) and ``uid``;
    ``run_dir`` is private to one sandbox and holds its kernel's connection file and log
    (owned by the service) and the sandbox's ``home``, ``tmp`` and ``sockets``.
    """

    sandbox_id: str
    sandbox_type: str
    session_id: str
    user_id: str | None
    work_dir: Path
    run_dir: Path
    isolation: Isolation
    uid: int | None
    limits: SandboxLimits

    @property
    def home(self) -> Path:
        return self.run_dir / "home"

    @property
    def tmp(self) -> Path:
        return self.run_dir / "tmp"

    def environment(self) -> dict[str, str]:
        return self.isolation.environment(self.home, self.tmp)

    def wrap(self, argv: list[str], *, uid: int | None = None) -> list[str]:
        """``argv`` as a sandboxed command line (rlimits, namespaces, uid)."""
        return self.isolation.command(
            argv, work_dir=self.work_dir, writable=[self.work_dir, self.run_dir], uid=uid
        )

    async def run(self, argv: list[str], seconds: float | None = None) -> ShellResult:
        """Run ``argv`` sandboxed in ``work_dir`` with the limits, killed after ``seconds``
        (default ``limits.timeout_seconds``); a timeout is reported, not raised."""
        return await run_sandboxed(
            self.wrap(argv, uid=self.uid),
            env=self.environment(),
            cwd=self.work_dir,
            seconds=seconds or self.limits.timeout_seconds,
            max_output_bytes=self.limits.max_output_bytes,
        )


class SandboxEngine:
    """Base of sandbox types. Subclass it, mark tools with :func:`tool`, register the type.

    Tools may be sync or async; they take JSON-compatible arguments by keyword and return
    JSON-compatible values or pydantic models. Blocking sync tools run in a worker thread.
    Override :meth:`close` to release what the engine started.
    """

    sandbox_type: ClassVar[str] = ""

    def __init__(self, context: SandboxContext) -> None:
        self.context = context
        self.closed = False

    @classmethod
    def tool_names(cls) -> list[str]:
        return sorted(name for name in dir(cls) if getattr(getattr(cls, name), _TOOL_MARK, False))

    async def invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run tool ``name`` and return its result as JSON-compatible data."""
        if self.closed:
            raise SandboxError(f"sandbox {self.context.sandbox_id} was released")
        if name not in self.tool_names():
            raise SandboxError(
                f"sandbox type {self.context.sandbox_type!r} has no tool {name!r}; "
                f"its tools are {', '.join(self.tool_names())}"
            )
        method = getattr(self, name)
        try:
            inspect.signature(method).bind(**arguments)
        except TypeError as exc:
            raise ValueError(f"bad arguments for {name}: {exc}") from None
        if inspect.iscoroutinefunction(method):
            result = await method(**arguments)
        else:
            result = await asyncio.to_thread(method, **arguments)
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        return _ANY.dump_python(result, mode="json")

    async def close(self) -> None:
        """Release what the engine started (processes); the directories go with the session.

        ``closed`` is already true when this runs, so no new tool call starts anything.
        """


class BaseSandboxEngine(SandboxEngine):
    """``base``: a persistent IPython kernel and shell commands."""

    sandbox_type = "base"

    def __init__(self, context: SandboxContext) -> None:
        super().__init__(context)
        self._kernel: SandboxKernel | None = None

    def _get_kernel(self) -> SandboxKernel:
        if self._kernel is None:
            ctx = self.context
            uid = ctx.uid if ctx.isolation.kernel_drops_uid else None
            self._kernel = SandboxKernel(
                run_dir=ctx.run_dir,
                work_dir=ctx.work_dir,
                env=ctx.environment(),
                wrap=lambda argv: ctx.wrap(argv, uid=uid),
                owner=uid,
                max_output_bytes=ctx.limits.max_output_bytes,
            )
        return self._kernel

    # ``timeout`` is part of the tool API (a limit reported in the result, not raised), so
    # ASYNC109's advice to use asyncio.timeout() does not apply here and below.
    @tool
    async def run_ipython_cell(self, code: str, timeout: float | None = None) -> CellResult:  # noqa: ASYNC109
        return await self._get_kernel().execute(
            code, timeout or self.context.limits.timeout_seconds
        )

    @tool
    async def run_shell_command(self, command: str, timeout: float | None = None) -> ShellResult:  # noqa: ASYNC109
        return await self.context.run([shell_path(), "-c", command], timeout)

    async def close(self) -> None:
        if self._kernel is not None:
            await self._kernel.close()


class FilesystemSandboxEngine(BaseSandboxEngine):
    """``filesystem``: the ``base`` tools plus file operations confined to the work dir."""

    sandbox_type = "filesystem"

    def __init__(self, context: SandboxContext) -> None:
        super().__init__(context)
        self._fs = ConfinedFilesystem(
            context.work_dir,
            owner=context.uid,
            max_read_bytes=context.limits.max_output_bytes,
            max_write_bytes=context.limits.file_size_bytes,
        )

    @tool
    def read_file(self, path: str) -> str:
        return self._fs.read_file(path)

    @tool
    def read_multiple_files(self, paths: list[str]) -> list[FileContent]:
        return self._fs.read_multiple_files(paths)

    @tool
    def write_file(self, path: str, content: str) -> None:
        self._fs.write_file(path, content)

    @tool
    def edit_file(self, path: str, edits: list[dict[str, str]], dry_run: bool = False) -> str:
        operations = [EditOperation.model_validate(edit) for edit in edits]
        return self._fs.edit_file(path, operations, dry_run)

    @tool
    def create_directory(self, path: str) -> None:
        self._fs.create_directory(path)

    @tool
    def list_directory(self, path: str = ".") -> list[DirectoryEntry]:
        return self._fs.list_directory(path)

    @tool
    def directory_tree(self, path: str = ".") -> TreeNode:
        return self._fs.directory_tree(path)

    @tool
    def move_file(self, source: str, destination: str) -> None:
        self._fs.move_file(source, destination)

    @tool
    def search_files(
        self, path: str, pattern: str, exclude_patterns: list[str] | None = None
    ) -> list[str]:
        return self._fs.search_files(path, pattern, exclude_patterns)

    @tool
    def get_file_info(self, path: str) -> FileInfo:
        return self._fs.get_file_info(path)

    @tool
    def list_allowed_directories(self) -> list[str]:
        return self._fs.list_allowed_directories()
