"""``agentmem sandbox-server``: embedded sandboxes served over HTTP to remote services.

Every request needs ``Authorization: Bearer <token>``; the token is compared in constant
time and a missing or wrong one gets 401 before anything else happens. Routes (JSON)::

    GET  /v1/health                          {"healthy": bool}
    GET  /v1/info                            ServiceInfo
    POST /v1/connect                         {session_id, user_id, sandbox_types} -> [descriptor]
    POST /v1/release                         {session_id, user_id} -> {"released": n}
    POST /v1/sandboxes/{sandbox_id}/{tool}   tool arguments -> {"result": ...}

Errors answer ``{"error": {"type": ..., "message": ...}}`` with 400/403/404/422/503/500.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from agentmem.errors import MissingExtraError, NotFoundError
from agentmem.services.sandbox.errors import (
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox.isolation import IsolationMode
from agentmem.services.sandbox.local import LocalBackend
from agentmem.services.sandbox.models import SandboxLimits

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError:  # pragma: no cover - depends on the installed extras
    Starlette = None  # type: ignore[assignment,misc]

__all__ = ["DEFAULT_IDLE_TIMEOUT", "create_app", "serve"]

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 3600.0


class _ConnectBody(BaseModel):
    session_id: str
    user_id: str | None = None
    sandbox_types: list[str] = ["base"]


class _ReleaseBody(BaseModel):
    session_id: str
    user_id: str | None = None


def _error(status: int, kind: str, message: str) -> Response:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, SandboxPathError):
        return 403, "SandboxPathError"
    if isinstance(exc, NotFoundError):
        return 404, "NotFoundError"
    if isinstance(exc, SandboxUnavailableError):
        return 503, "SandboxUnavailableError"
    if isinstance(exc, SandboxError):
        return 400, "SandboxError"
    if isinstance(exc, ValueError | TypeError):
        return 422, "ValueError"
    return 500, "InternalError"


def create_app(token: str, backend: LocalBackend) -> Starlette:
    """The ASGI app serving ``backend``; it starts and stops the backend with the app."""
    if Starlette is None:
        raise MissingExtraError("The sandbox server", "sandbox", "starlette")
    if not token:
        raise ValueError("the sandbox server needs a non-empty bearer token")
    expected = f"Bearer {token}".encode()

    def guarded(
        handler: Callable[[Request], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"error": {"type": "Unauthorized", "message": "missing or wrong token"}},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                return JSONResponse(await handler(request))
            except ValidationError as exc:
                return _error(422, "ValueError", str(exc))
            except Exception as exc:
                status, kind = _status_of(exc)
                if status == 500:
                    log.exception("sandbox server request failed")
                return _error(status, kind, str(exc))

        return endpoint

    async def health(request: Request) -> Any:
        return {"healthy": await backend.health()}

    async def info(request: Request) -> Any:
        return (await backend.info()).model_dump(mode="json")

    async def connect(request: Request) -> Any:
        body = _ConnectBody.model_validate(await request.json())
        descriptors = await backend.connect(body.session_id, body.user_id, body.sandbox_types)
        return [d.model_dump(mode="json") for d in descriptors]

    async def release(request: Request) -> Any:
        body = _ReleaseBody.model_validate(await request.json())
        return {"released": await backend.release(body.session_id, body.user_id)}

    async def invoke(request: Request) -> Any:
        arguments = await request.json()
        if not isinstance(arguments, dict):
            raise ValueError("tool arguments must be a JSON object")
        sandbox_id, tool = request.path_params["sandbox_id"], request.path_params["tool"]
        return {"result": await backend.invoke(sandbox_id, tool, arguments)}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    return Starlette(
        routes=[
            Route("/v1/health", guarded(health), methods=["GET"]),
            Route("/v1/info", guarded(info), methods=["GET"]),
            Route("/v1/connect", guarded(connect), methods=["POST"]),
            Route("/v1/release", guarded(release), methods=["POST"]),
            Route("/v1/sandboxes/{sandbox_id}/{tool}", guarded(invoke), methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def serve(
    *,
    host: str,
    port: int,
    token: str,
    isolation: IsolationMode = "auto",
    limits: SandboxLimits | None = None,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> None:
    """Serve until SIGINT/SIGTERM, then release every sandbox.

    ``port=0`` picks a free port. Once the socket is bound, one line
    ``agentmem sandbox-server listening on http://HOST:PORT`` is printed to stdout, so a
    parent process can read the port; requests sent before the app is ready wait.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError("The sandbox server", "sandbox", "uvicorn") from exc
    backend = LocalBackend(isolation=isolation, limits=limits, idle_timeout=idle_timeout)
    app = create_app(token, backend)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    print(f"agentmem sandbox-server listening on http://{shown_host}:{bound_port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
