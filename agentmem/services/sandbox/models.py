"""The data the sandbox service takes and returns (pydantic models, JSON-serialisable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "CellError",
    "CellResult",
    "DirectoryEntry",
    "Edit",
    "EditOperation",
    "FileContent",
    "FileInfo",
    "IsolationInfo",
    "SandboxLimits",
    "ServerLimits",
    "ServiceInfo",
    "ShellResult",
    "TreeNode",
]

_MiB = 1024 * 1024


class SandboxLimits(BaseModel):
    """Resource limits of the sandboxes of one session (one ``(session_id, user_id)``).

    Per process, as kernel rlimits set in each sandboxed process: ``cpu_seconds`` (CPU
    time), ``memory_bytes`` (address space), ``file_size_bytes``, ``open_files`` and
    ``processes`` (counted per uid, so per session when the service is root).

    Per session, for all its processes and files together, where the host allows it (see
    ``IsolationInfo.session_limits``): ``memory_bytes`` and ``processes`` again, and
    ``cpus`` (CPU cores its processes may use together), through a cgroup of the session;
    ``disk_bytes`` and ``disk_files`` (files and directories, including the few the service
    makes for each sandbox) bound everything the session may write, through a tmpfs of its
    own. ``processes`` counts threads too (an IPython kernel uses about ten).

    Per call: ``timeout_seconds`` is the wall-clock limit of one call (a caller may ask
    for less, never more); ``max_output_bytes`` caps each captured stream and every file
    read. ``tmp_size_bytes`` sizes the private /tmp and /dev/shm of each process tree
    under bubblewrap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(default=300, gt=0)
    memory_bytes: int = Field(default=2048 * _MiB, gt=0)
    processes: int = Field(default=128, gt=0)
    cpus: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    file_size_bytes: int = Field(default=256 * _MiB, gt=0)
    open_files: int = Field(default=256, gt=16)
    disk_bytes: int = Field(default=1024 * _MiB, gt=0)
    disk_files: int = Field(default=100_000, gt=16)
    timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    max_output_bytes: int = Field(default=1 * _MiB, gt=0)
    tmp_size_bytes: int = Field(default=256 * _MiB, gt=0)


class ServerLimits(BaseModel):
    """What one request, one user id or all callers together may ask of a sandbox server.

    A request body larger than ``max_request_bytes`` gets 413 (a ``write_file`` through the
    server is bounded by it too); a ``connect`` that would make the server hold more than
    ``max_sandboxes`` live sandboxes, or one user id more than ``max_sandboxes_per_user``,
    gets 429. Sessions without a user id count as one user.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_request_bytes: int = Field(default=32 * _MiB, gt=0)
    max_sandboxes: int = Field(default=64, gt=0)
    max_sandboxes_per_user: int = Field(default=16, gt=0)


class IsolationInfo(BaseModel):
    """What isolation the sandboxes of a service actually get on this host."""

    mode: Literal["bubblewrap", "process"]
    namespaces: list[str] = Field(description="Linux namespaces each sandbox gets.")
    network: bool = Field(description="Whether sandboxed code can reach the network.")
    read_only_system: bool
    private_tmp: bool
    separate_pids: bool
    session_uids: bool = Field(
        description="Shell commands of each session run as a uid of its own (root only)."
    )
    kernel_session_uids: bool = Field(
        description="IPython kernels too (needs bubblewrap, or an interpreter other uids can read)."
    )
    enforced_limits: list[str] = Field(description="Names of the SandboxLimits enforced.")
    session_limits: list[str] = Field(
        default_factory=list,
        description="Those enforced for each session's processes or files together; the "
        "other ones bound each process alone.",
    )
    cgroup: Literal["v1", "v2"] | None = Field(
        default=None, description="The cgroup version bounding each session, if any."
    )
    warnings: list[str] = Field(default_factory=list)


class ServiceInfo(BaseModel):
    """What :meth:`SandboxService.info` reports."""

    remote: bool
    base_url: str | None = None
    isolation: IsolationInfo | None = Field(
        description="Isolation of embedded sandboxes; the server's for a remote service."
    )
    limits: SandboxLimits
    sandbox_types: list[str]
    live_sandboxes: int
    idle_timeout_seconds: float | None
    max_sandboxes: int | None = Field(
        default=None, description="Live sandboxes a sandbox server holds at most."
    )
    max_sandboxes_per_user: int | None = Field(
        default=None, description="Live sandboxes of one user id a sandbox server holds at most."
    )
    per_user_tokens: bool = Field(
        default=False,
        description="Whether the sandbox server binds each token to the user ids it may act for.",
    )


class CellError(BaseModel):
    """An exception raised by code in an IPython cell."""

    ename: str
    evalue: str
    traceback: list[str] = Field(description="Traceback lines, ANSI colour codes removed.")


class CellResult(BaseModel):
    """The outcome of :meth:`BaseSandbox.run_ipython_cell`.

    ``status`` is ``"ok"``, ``"error"`` (the cell raised; see ``error``) or ``"timeout"``
    (the cell ran longer than the timeout and was interrupted). When the kernel had to be
    restarted (it died, or ignored the interrupt), ``kernel_restarted`` is true and the
    variables of earlier cells are gone.
    """

    status: Literal["ok", "error", "timeout"]
    stdout: str = ""
    stderr: str = ""
    result: str | None = Field(default=None, description="text/plain of the cell's value.")
    display: list[str] = Field(default_factory=list, description="text/plain of displays.")
    error: CellError | None = None
    execution_count: int | None = None
    kernel_restarted: bool = False
    truncated: bool = Field(default=False, description="Output exceeded max_output_bytes.")
    duration_seconds: float = 0.0


class ShellResult(BaseModel):
    """The outcome of :meth:`BaseSandbox.run_shell_command`.

    ``returncode`` is negative when a signal killed the command (``signal`` names it, e.g.
    ``"SIGXFSZ"`` when the file-size limit was hit); on a timeout the whole command is
    killed and ``timed_out`` is true.
    """

    returncode: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    signal: str | None = None
    truncated: bool = False
    duration_seconds: float = 0.0


class EditOperation(BaseModel):
    """One replacement for :meth:`FilesystemSandbox.edit_file`: ``old_text`` must occur once."""

    old_text: str
    new_text: str


#: An edit given as an :class:`EditOperation` or as a ``{"old_text", "new_text"}`` dict;
#: validation makes either an :class:`EditOperation`.
Edit = Annotated[EditOperation | Mapping[str, str], BeforeValidator(EditOperation.model_validate)]


class FileContent(BaseModel):
    """One entry of :meth:`FilesystemSandbox.read_multiple_files`."""

    path: str
    content: str | None = None
    error: str | None = None


class DirectoryEntry(BaseModel):
    name: str
    type: Literal["file", "directory", "symlink", "other"]


class TreeNode(BaseModel):
    name: str
    type: Literal["file", "directory", "symlink", "other"]
    children: list[TreeNode] | None = None


class FileInfo(BaseModel):
    path: str
    type: Literal["file", "directory", "symlink", "other"]
    size: int
    modified: float
    accessed: float
    changed: float
    permissions: str = Field(description="Octal mode bits, e.g. '644'.")
