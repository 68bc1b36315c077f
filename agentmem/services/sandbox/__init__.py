"""Sandboxed tool execution environments for agents (see :class:`SandboxService`).

Modules: :mod:`.service` (the service), :mod:`.handles` (what callers hold),
:mod:`.engines` (sandbox types), :mod:`.isolation` (bubblewrap, rlimits, uids),
:mod:`.kernel` (IPython), :mod:`.shell`, :mod:`.fs`, :mod:`.local` and :mod:`.remote`
(backends), :mod:`.server` (``agentmem sandbox-server``), :mod:`.models`, :mod:`.errors`.
"""

from agentmem.services.sandbox.engines import SandboxContext, SandboxEngine, tool
from agentmem.services.sandbox.errors import (
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox.handles import BaseSandbox, FilesystemSandbox, Sandbox
from agentmem.services.sandbox.models import (
    CellError,
    CellResult,
    DirectoryEntry,
    EditOperation,
    FileContent,
    FileInfo,
    IsolationInfo,
    SandboxLimits,
    ServiceInfo,
    ShellResult,
    TreeNode,
)
from agentmem.services.sandbox.registry import register_sandbox_type, sandbox_types
from agentmem.services.sandbox.service import SandboxService

__all__ = [
    "BaseSandbox",
    "CellError",
    "CellResult",
    "DirectoryEntry",
    "EditOperation",
    "FileContent",
    "FileInfo",
    "FilesystemSandbox",
    "IsolationInfo",
    "Sandbox",
    "SandboxAuthError",
    "SandboxContext",
    "SandboxEngine",
    "SandboxError",
    "SandboxLimits",
    "SandboxPathError",
    "SandboxService",
    "SandboxUnavailableError",
    "ServiceInfo",
    "ShellResult",
    "TreeNode",
    "register_sandbox_type",
    "sandbox_types",
    "tool",
]
