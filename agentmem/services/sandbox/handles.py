"""What callers hold: one handle per live sandbox, the same class embedded and remote.

Every tool has an async method prefixed with ``a`` (``await sandbox.arun_ipython_cell(...)``)
and a sync method with AgentScope Runtime's name (``sandbox.run_ipython_cell(...)``). The
sync methods block the calling thread and work everywhere, also inside a running event
loop such as a Jupyter cell (they run on the service's private loop); in async code prefer
the ``a`` methods, which do not block the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import TypeAdapter

from agentmem.services.sandbox.models import (
    CellResult,
    DirectoryEntry,
    EditOperation,
    FileContent,
    FileInfo,
    SandboxDescriptor,
    ShellResult,
    TreeNode,
)

if TYPE_CHECKING:
    from agentmem._loop_thread import LoopThread
    from agentmem.services.sandbox.backend import SandboxBackend

__all__ = ["BaseSandbox", "FilesystemSandbox", "Sandbox"]

_ENTRIES = TypeAdapter(list[DirectoryEntry])
_CONTENTS = TypeAdapter(list[FileContent])
_STRINGS = TypeAdapter(list[str])


class Sandbox:
    """A live sandbox. Custom types get this class (or a subclass registered with them).

    :meth:`acall`/:meth:`call` run any tool by name with JSON-compatible arguments and return
    its JSON-compatible result.
    """

    sandbox_type: ClassVar[str] = ""

    def __init__(
        self, descriptor: SandboxDescriptor, backend: SandboxBackend, runner: LoopThread
    ) -> None:
        self._descriptor = descriptor
        self._backend = backend
        self._runner = runner

    @property
    def sandbox_id(self) -> str:
        return self._descriptor.sandbox_id

    @property
    def type(self) -> str:
        return self._descriptor.sandbox_type

    @property
    def session_id(self) -> str:
        return self._descriptor.session_id

    @property
    def user_id(self) -> str | None:
        return self._descriptor.user_id

    @property
    def work_dir(self) -> str:
        """The sandbox's directory, as sandboxed code and the filesystem tools see it."""
        return self._descriptor.work_dir

    @property
    def tools(self) -> list[str]:
        return list(self._descriptor.tools)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.sandbox_id} type={self.type!r} "
            f"session={self.session_id!r} user={self.user_id!r}>"
        )

    async def acall(self, tool: str, **arguments: Any) -> Any:
        """Run tool ``tool`` of this sandbox."""
        return await self._runner.run(self._backend.invoke(self.sandbox_id, tool, arguments))

    def call(self, tool: str, **arguments: Any) -> Any:
        """Sync :meth:`acall`."""
        return self._runner.run_sync(self._backend.invoke(self.sandbox_id, tool, arguments))


class BaseSandbox(Sandbox):
    """``base``: a persistent IPython kernel (variables survive between cells) and a shell.

    ``timeout`` overrides the service's ``limits.timeout_seconds`` for one call. The kernel
    starts on the first cell, inside the sandbox, so a sandbox used only for shell or file
    work never starts one.
    """

    sandbox_type = "base"

    # ``timeout`` is a limit reported in the result, not raised: ASYNC109 does not apply.
    async def arun_ipython_cell(self, code: str, timeout: float | None = None) -> CellResult:  # noqa: ASYNC109
        """Run ``code`` in the sandbox's IPython kernel."""
        data = await self.acall("run_ipython_cell", code=code, timeout=timeout)
        return CellResult.model_validate(data)

    def run_ipython_cell(self, code: str, timeout: float | None = None) -> CellResult:
        """Sync :meth:`arun_ipython_cell`."""
        data = self.call("run_ipython_cell", code=code, timeout=timeout)
        return CellResult.model_validate(data)

    async def arun_shell_command(self, command: str, timeout: float | None = None) -> ShellResult:  # noqa: ASYNC109
        """Run ``command`` with bash (sh if absent) in the sandbox's directory."""
        data = await self.acall("run_shell_command", command=command, timeout=timeout)
        return ShellResult.model_validate(data)

    def run_shell_command(self, command: str, timeout: float | None = None) -> ShellResult:
        """Sync :meth:`arun_shell_command`."""
        data = self.call("run_shell_command", command=command, timeout=timeout)
        return ShellResult.model_validate(data)


def _edits(edits: list[EditOperation] | list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        e.model_dump() if isinstance(e, EditOperation) else EditOperation(**e).model_dump()
        for e in edits
    ]


class FilesystemSandbox(BaseSandbox):
    """``filesystem``: the ``base`` tools plus file operations inside the sandbox directory.

    Paths are relative to :attr:`work_dir` or absolute inside it. A path that leaves it
    (``..``, another absolute path) or goes through a symbolic link raises
    :class:`~agentmem.services.sandbox.errors.SandboxPathError`; a missing file raises
    :class:`~agentmem.errors.NotFoundError`; other failures
    :class:`~agentmem.services.sandbox.errors.SandboxError`.
    """

    sandbox_type = "filesystem"

    async def aread_file(self, path: str) -> str:
        """The file's text (UTF-8)."""
        return str(await self.acall("read_file", path=path))

    def read_file(self, path: str) -> str:
        return str(self.call("read_file", path=path))

    async def aread_multiple_files(self, paths: list[str]) -> list[FileContent]:
        """Each file's text or, per file, why it could not be read."""
        return _CONTENTS.validate_python(await self.acall("read_multiple_files", paths=paths))

    def read_multiple_files(self, paths: list[str]) -> list[FileContent]:
        return _CONTENTS.validate_python(self.call("read_multiple_files", paths=paths))

    async def awrite_file(self, path: str, content: str) -> None:
        """Create or overwrite a file; its directory must exist."""
        await self.acall("write_file", path=path, content=content)

    def write_file(self, path: str, content: str) -> None:
        self.call("write_file", path=path, content=content)

    async def aedit_file(
        self,
        path: str,
        edits: list[EditOperation] | list[dict[str, str]],
        dry_run: bool = False,
    ) -> str:
        """Replace texts that occur exactly once each; returns the unified diff."""
        return str(await self.acall("edit_file", path=path, edits=_edits(edits), dry_run=dry_run))

    def edit_file(
        self,
        path: str,
        edits: list[EditOperation] | list[dict[str, str]],
        dry_run: bool = False,
    ) -> str:
        return str(self.call("edit_file", path=path, edits=_edits(edits), dry_run=dry_run))

    async def acreate_directory(self, path: str) -> None:
        """Create a directory and missing parents (no error if it exists)."""
        await self.acall("create_directory", path=path)

    def create_directory(self, path: str) -> None:
        self.call("create_directory", path=path)

    async def alist_directory(self, path: str = ".") -> list[DirectoryEntry]:
        """Entries sorted by name; symlinks are shown as such, never followed."""
        return _ENTRIES.validate_python(await self.acall("list_directory", path=path))

    def list_directory(self, path: str = ".") -> list[DirectoryEntry]:
        return _ENTRIES.validate_python(self.call("list_directory", path=path))

    async def adirectory_tree(self, path: str = ".") -> TreeNode:
        """The directory with everything below it."""
        return TreeNode.model_validate(await self.acall("directory_tree", path=path))

    def directory_tree(self, path: str = ".") -> TreeNode:
        return TreeNode.model_validate(self.call("directory_tree", path=path))

    async def amove_file(self, source: str, destination: str) -> None:
        """Move or rename; the destination must not exist."""
        await self.acall("move_file", source=source, destination=destination)

    def move_file(self, source: str, destination: str) -> None:
        self.call("move_file", source=source, destination=destination)

    async def asearch_files(
        self, path: str, pattern: str, exclude_patterns: list[str] | None = None
    ) -> list[str]:
        """Absolute paths below ``path`` whose name matches the glob (or substring)."""
        data = await self.acall(
            "search_files", path=path, pattern=pattern, exclude_patterns=exclude_patterns
        )
        return _STRINGS.validate_python(data)

    def search_files(
        self, path: str, pattern: str, exclude_patterns: list[str] | None = None
    ) -> list[str]:
        data = self.call(
            "search_files", path=path, pattern=pattern, exclude_patterns=exclude_patterns
        )
        return _STRINGS.validate_python(data)

    async def aget_file_info(self, path: str) -> FileInfo:
        """Type, size, times and permissions (of a symlink itself, not its target)."""
        return FileInfo.model_validate(await self.acall("get_file_info", path=path))

    def get_file_info(self, path: str) -> FileInfo:
        return FileInfo.model_validate(self.call("get_file_info", path=path))

    async def alist_allowed_directories(self) -> list[str]:
        """The one directory all paths must stay in."""
        return _STRINGS.validate_python(await self.acall("list_allowed_directories"))

    def list_allowed_directories(self) -> list[str]:
        return _STRINGS.validate_python(self.call("list_allowed_directories"))
