"""``SandboxService``: sandboxed tool environments per (session, user)."""

from __future__ import annotations

import atexit
import functools
import weakref
from collections.abc import Sequence

from agentmem._loop_thread import LoopThread
from agentmem.errors import InvalidArgumentError, ServiceNotStartedError
from agentmem.services.base import ServiceWithLifecycleManager
from agentmem.services.sandbox.backend import SandboxBackend
from agentmem.services.sandbox.handles import Sandbox
from agentmem.services.sandbox.isolation import IsolationMode
from agentmem.services.sandbox.local import LocalBackend
from agentmem.services.sandbox.models import SandboxLimits, ServiceInfo
from agentmem.services.sandbox.registry import handle_class
from agentmem.services.sandbox.remote import RemoteBackend

__all__ = ["SandboxService"]


class SandboxService(ServiceWithLifecycleManager):
    """Manages sandboxed tool execution environments, keyed by session id and user id.

    Embedded (``SandboxService()``): sandboxes are local processes, isolated with
    bubblewrap namespaces when the host allows it (see :meth:`info`). Construction does
    nothing; the service starts itself on the first :meth:`connect` (``start()`` is
    optional), and :meth:`stop` kills every sandboxed process and deletes every sandbox
    directory. Remote (``SandboxService(base_url=..., bearer_token=...)``): sandboxes live in
    an ``agentmem sandbox-server``; call :meth:`start` (or use ``async with``) first, as
    with any service holding a connection, or get :class:`ServiceNotStartedError`.

    ``isolation`` (embedded): ``"auto"`` (bubblewrap if it works here, else plain
    subprocesses plus a logged warning), ``"bubblewrap"`` (fail instead of falling back) or
    ``"process"`` (never bubblewrap). ``limits`` bound each process and, where the host
    allows it, each session's processes and files together (see
    :class:`~agentmem.services.sandbox.models.SandboxLimits` and :meth:`info`).
    ``idle_timeout`` releases sessions unused for that many seconds (``None``: never).
    ``request_timeout`` (remote) bounds one HTTP request, so keep it above the server's
    per-call timeout. A server shared by several users binds each token to the user ids it
    may act for: another user's sandbox raises
    :class:`~agentmem.errors.SandboxAuthError`, and a server at its sandbox caps raises
    :class:`~agentmem.errors.SandboxUnavailableError` (see :mod:`.server`).

    :meth:`health` answers within :attr:`health_timeout` seconds: remote, whether the
    server answers that it can serve; embedded, whether sandboxes can still be made.

    All methods may be awaited from any event loop: the sandboxes themselves live on a
    private loop thread of the service.
    """

    def __init__(
        self,
        base_url: str | None = None,
        bearer_token: str | None = None,
        *,
        isolation: IsolationMode = "auto",
        limits: SandboxLimits | None = None,
        idle_timeout: float | None = None,
        request_timeout: float = 300.0,
    ) -> None:
        if base_url is not None and not bearer_token:
            raise InvalidArgumentError(
                "bearer_token", "a remote SandboxService needs one (the server's token)"
            )
        if base_url is None and bearer_token is not None:
            raise InvalidArgumentError("bearer_token", "is only used with base_url")
        self._backend: SandboxBackend
        if base_url is None:
            self._backend = LocalBackend(
                isolation=isolation, limits=limits, idle_timeout=idle_timeout
            )
        else:
            self._backend = RemoteBackend(
                base_url, bearer_token or "", request_timeout=request_timeout
            )
        self.remote = base_url is not None
        self._runner = LoopThread(
            "agentmem-sandbox",
            "use the async variant of the sandbox method (await sandbox.a<method>(...))",
        )
        self._started = False
        self._handles: dict[str, Sandbox] = {}
        self._at_exit: functools.partial[None] | None = None

    async def start(self) -> None:
        """Prepare the backend (probe isolation, or open the HTTP client). Idempotent."""
        if self._started:
            return
        await self._runner.run(self._backend.start())
        self._started = True
        # If the program never calls stop(), still kill what the sandboxes run at exit.
        self._at_exit = functools.partial(_stop_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)

    async def stop(self) -> None:
        """Release every sandbox (embedded: kill processes, delete directories). Idempotent."""
        if self._started:
            self._started = False
            self._handles.clear()
            if self._at_exit is not None:
                atexit.unregister(self._at_exit)
            await self._runner.run(self._backend.stop())
        self._runner.close()

    async def _check_health(self) -> bool:
        """Remote: started and the server answers that it can serve (a round trip).
        Embedded: its sandbox directory is usable and idle sessions are still reaped; an
        embedded service that is not started yet counts as healthy (it starts on use)."""
        if not self._started:
            return not self.remote
        return await self._runner.run(self._backend.health())

    async def info(self) -> ServiceInfo:
        """What isolation sandboxes get, the limits, the sandbox types and how many live."""
        await self._require_started()
        info = await self._runner.run(self._backend.info())
        if not isinstance(self._backend, RemoteBackend):
            return info
        # The server describes its own embedded backend; this service reaches it remotely.
        return info.model_copy(update={"remote": True, "base_url": self._backend.base_url})

    async def _require_started(self) -> None:
        if not self._started:
            if self.remote:
                raise ServiceNotStartedError(self)
            await self.start()

    async def connect(
        self,
        session_id: str,
        user_id: str | None = None,
        sandbox_types: Sequence[str] | None = None,
    ) -> list[Sandbox]:
        """The sandboxes of ``(session_id, user_id)``, one per type (default ``["base"]``).

        Connecting again with the same ids returns the same live sandboxes (same files,
        same kernel state); new types are added to the session. All sandboxes of a session
        share its directory. Types: ``"base"`` (:class:`BaseSandbox`), ``"filesystem"``
        (:class:`FilesystemSandbox`) and registered custom types. Ids are checked as in
        every service (:class:`~agentmem.errors.InvalidArgumentError`).
        """
        types = list(sandbox_types) if sandbox_types is not None else ["base"]
        await self._require_started()
        descriptors = await self._runner.run(self._backend.connect(session_id, user_id, types))
        handles = []
        for descriptor in descriptors:
            handle = self._handles.get(descriptor.sandbox_id)
            if handle is None:
                cls = handle_class(descriptor.sandbox_type)
                handle = cls(descriptor, self._backend, self._runner)
                self._handles[descriptor.sandbox_id] = handle
            handles.append(handle)
        return handles

    async def release(self, session_id: str, user_id: str | None = None) -> None:
        """Kill the session's sandboxes and delete its files; unknown sessions are ignored."""
        await self._require_started()
        await self._runner.run(self._backend.release(session_id, user_id))
        self._handles = {
            sid: h
            for sid, h in self._handles.items()
            if (h.session_id, h.user_id) != (session_id, user_id)
        }


def _stop_at_exit(ref: weakref.ref[SandboxService]) -> None:
    service = ref()
    if service is not None and service._started:
        service._started = False
        service._runner.run_sync(service._backend.stop())
        service._runner.close()
