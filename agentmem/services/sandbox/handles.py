"""What callers hold: one handle per live sandbox, the same class embedded and remote.

Every tool has an async method prefixed with ``a`` (``await sandbox.arun_ipython_cell(...)``)
and a sync method with AgentScope Runtime's name (``sandbox.run_ipython_cell(...)``). The
sync methods block the calling thread and work everywhere, also inside a running event
loop such as a Jupyter cell (they run on the service's private loop); in async code prefer
the ``a`` methods, which do not block the loop.

Both methods of a tool are made from its one definition, the engine's method (see
:mod:`.calls`): they take its arguments and return its result type, and their
documentation is its docstring.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

from agentmem.services.sandbox.calls import arguments_to_json, proxies
from agentmem.services.sandbox.engines import BaseSandboxEngine, FilesystemSandboxEngine

if TYPE_CHECKING:
    from agentmem._loop_thread import LoopThread
    from agentmem.services.sandbox.backend import SandboxBackend, SandboxDescriptor

__all__ = ["BaseSandbox", "FilesystemSandbox", "Sandbox"]


class Sandbox:
    """A live sandbox. Custom types get this class (or a subclass registered with them).

    :meth:`acall`/:meth:`call` run any tool by name with JSON-compatible arguments (or
    pydantic models) and return its JSON-compatible result.
    """

    sandbox_type: ClassVar[str] = ""

    def __init__(
        self, descriptor: SandboxDescriptor, backend: SandboxBackend, runner: LoopThread
    ) -> None:
        self._descriptor = descriptor
        self._invoke = functools.partial(backend.invoke, descriptor.sandbox_id)
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

    async def acall(self, tool: str, /, **arguments: Any) -> Any:
        """Run tool ``tool`` of this sandbox.

        Arguments that JSON cannot carry, and arguments the tool does not take, raise
        :class:`~agentmem.errors.InvalidArgumentError`.
        """
        return await self._runner.run(self._invoke(tool, arguments_to_json(tool, arguments)))

    def call(self, tool: str, /, **arguments: Any) -> Any:
        """Sync :meth:`acall`."""
        return self._runner.run_sync(self._invoke(tool, arguments_to_json(tool, arguments)))


class BaseSandbox(Sandbox):
    """``base``: a persistent IPython kernel (variables survive between cells) and a shell.

    The kernel starts on the first cell, inside the sandbox, so a sandbox used only for
    shell or file work never starts one.
    """

    sandbox_type = "base"

    run_ipython_cell, arun_ipython_cell = proxies(BaseSandboxEngine.run_ipython_cell)
    run_shell_command, arun_shell_command = proxies(BaseSandboxEngine.run_shell_command)


class FilesystemSandbox(BaseSandbox):
    """``filesystem``: the ``base`` tools plus file operations inside the sandbox directory.

    Paths are relative to :attr:`work_dir` or absolute inside it. A path that leaves it
    (``..``, another absolute path), goes through a symbolic link, or names a FIFO, a
    socket or a device raises :class:`~agentmem.errors.SandboxPathError`; a missing file
    raises :class:`~agentmem.errors.NotFoundError`; other failures (a full disk among them)
    :class:`~agentmem.errors.SandboxError`. Each operation is given up after the service's
    ``limits.timeout_seconds``.
    """

    sandbox_type = "filesystem"

    read_file, aread_file = proxies(FilesystemSandboxEngine.read_file)
    read_multiple_files, aread_multiple_files = proxies(FilesystemSandboxEngine.read_multiple_files)
    write_file, awrite_file = proxies(FilesystemSandboxEngine.write_file)
    edit_file, aedit_file = proxies(FilesystemSandboxEngine.edit_file)
    create_directory, acreate_directory = proxies(FilesystemSandboxEngine.create_directory)
    list_directory, alist_directory = proxies(FilesystemSandboxEngine.list_directory)
    directory_tree, adirectory_tree = proxies(FilesystemSandboxEngine.directory_tree)
    move_file, amove_file = proxies(FilesystemSandboxEngine.move_file)
    search_files, asearch_files = proxies(FilesystemSandboxEngine.search_files)
    get_file_info, aget_file_info = proxies(FilesystemSandboxEngine.get_file_info)
    list_allowed_directories, alist_allowed_directories = proxies(
        FilesystemSandboxEngine.list_allowed_directories
    )
