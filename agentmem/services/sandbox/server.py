"""``agentmem sandbox-server``: embedded sandboxes served over HTTP to remote services.

Each operation of :class:`~agentmem.services.sandbox.backend.SandboxBackend` (``health``,
``info``, ``connect``, ``release`` and ``invoke``, which runs a tool of a live sandbox) is
one route, taking its method's arguments and answering its result as JSON::

    POST /v1/<operation>    {argument: value, ...} -> {"result": ...}

Every request needs ``Authorization: Bearer <token>``; the token is compared in constant
time and a missing or wrong one gets 401 before the body is read. Errors answer
``{"error": {"type": ..., "message": ...}}`` with 400/403/404/422/503/500 (see
:func:`~agentmem.services.sandbox.calls.error_to_json`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator

from agentmem.errors import InvalidArgumentError, MissingExtraError
from agentmem.services.sandbox.backend import SandboxBackend
from agentmem.services.sandbox.calls import call_by_name, error_to_json
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


def _error(status: int, error: dict[str, str], **headers: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def create_app(token: str, backend: LocalBackend) -> Starlette:
    """The ASGI app serving ``backend``; it starts and stops the backend with the app."""
    if Starlette is None:
        raise MissingExtraError("The sandbox server", "sandbox", "starlette")
    if not token:
        raise ValueError("the sandbox server needs a non-empty bearer token")
    expected = f"Bearer {token}".encode()

    async def endpoint(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            unauthorized = {"type": "Unauthorized", "message": "missing or wrong token"}
            return _error(401, unauthorized, **{"WWW-Authenticate": "Bearer"})
        try:
            arguments = await request.json()
            if not isinstance(arguments, dict):
                raise InvalidArgumentError("body", "must be a JSON object of arguments")
            operation = request.path_params["operation"]
            result = await call_by_name(
                SandboxBackend, backend, operation, arguments, owner="the sandbox server"
            )
            return JSONResponse({"result": result})
        except Exception as exc:
            status, error = error_to_json(exc)
            if status == 500:
                log.exception("sandbox server request failed")
            return _error(status, error)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    route = Route("/v1/{operation}", endpoint, methods=["POST"])
    return Starlette(routes=[route], lifespan=lifespan)


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
