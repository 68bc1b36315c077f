"""Public import path of the sandbox service: ``from agentmem.services.sandbox_service import
SandboxService``. The implementation lives in :mod:`agentmem.services.sandbox`."""

from agentmem.services.sandbox import *  # noqa: F403
from agentmem.services.sandbox import __all__ as __all__
