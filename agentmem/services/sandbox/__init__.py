"""Sandboxed tool execution environments for agents (see :class:`SandboxService`).

Modules: :mod:`.service` (the service), :mod:`.handles` (what callers hold),
:mod:`.engines` (sandbox types) and :mod:`.context` (what an engine gets),
:mod:`.calls` (operations called by name: each tool and server operation is defined once),
:mod:`.isolation` (bubblewrap, rlimits, uids), :mod:`.cgroups` and :mod:`.storage` (what
bounds a session's processes and files together), :mod:`.processes`, :mod:`.kernel`
(IPython), :mod:`.shell`, :mod:`.fs`, :mod:`.backend` with :mod:`.local` and
:mod:`.remote`, :mod:`.server` (``agentmem sandbox-server``) and :mod:`.models`. The errors
live in :mod:`agentmem.errors`.
"""

from agentmem.errors import (
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox import models
from agentmem.services.sandbox.calls import tool
from agentmem.services.sandbox.context import SandboxContext
from agentmem.services.sandbox.engines import SandboxEngine
from agentmem.services.sandbox.handles import BaseSandbox, FilesystemSandbox, Sandbox
from agentmem.services.sandbox.models import *  # noqa: F403
from agentmem.services.sandbox.registry import register_sandbox_type, sandbox_types
from agentmem.services.sandbox.service import SandboxService

__all__ = [
    "BaseSandbox",
    "FilesystemSandbox",
    "Sandbox",
    "SandboxAuthError",
    "SandboxContext",
    "SandboxEngine",
    "SandboxError",
    "SandboxPathError",
    "SandboxService",
    "SandboxUnavailableError",
    "register_sandbox_type",
    "sandbox_types",
    "tool",
]
__all__ += models.__all__
