"""``agentmem sandbox-server``: embedded sandboxes served over HTTP to remote services.

Each operation of :class:`~agentmem.services.sandbox.backend.SandboxBackend` (``health``,
``info``, ``connect``, ``release`` and ``invoke``, which runs a tool of a live sandbox) is
one route, taking its method's arguments and answering its result as JSON::

    POST /v1/<operation>    {argument: value, ...} -> {"result": ...}

**Who may do what.** Every request needs ``Authorization: Bearer <token>``. Tokens are
compared in constant time, and a missing or unknown one gets 401 before the body is read.
The server runs in one of two modes (see :class:`Tokens`):

- *single token*: whoever holds the token may act for any user id. For a deployment
  serving one tenant, whose clients all trust each other.
- *per user*: each token may act only for the user ids listed for it. ``connect`` and
  ``release`` for another user, or ``invoke`` on another user's sandbox, get 403 and run
  nothing; ``user_id`` is required.

**The server's limits are maxima** (see
:class:`~agentmem.services.sandbox.models.ServerLimits`): a caller may ask a tool for a
shorter timeout than ``limits.timeout_seconds``, never a longer one; a body larger than
``max_request_bytes`` gets 413 unread; a body that is not JSON, or nests deeper than
:data:`~agentmem.limits.MAX_JSON_DEPTH`, gets 400; ids are checked as in the embedded
service (422); a ``connect`` that would make more than ``max_sandboxes`` live sandboxes,
or more than ``max_sandboxes_per_user`` of its user, gets 429 and creates nothing.

Errors answer ``{"error": {"type": ..., "message": ...}}`` (see
:func:`~agentmem.services.sandbox.calls.error_to_json`); an unexpected exception is logged
and answered 500 without its text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agentmem._validation import check_id
from agentmem.errors import InvalidArgumentError, MissingExtraError, SandboxAuthError
from agentmem.limits import MAX_JSON_DEPTH
from agentmem.services.sandbox.backend import SandboxBackend
from agentmem.services.sandbox.calls import error_to_json, to_json, validate_call
from agentmem.services.sandbox.isolation import IsolationMode
from agentmem.services.sandbox.local import LocalBackend, session_key
from agentmem.services.sandbox.models import SandboxLimits, ServerLimits, ServiceInfo

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError:  # pragma: no cover - depends on the installed extras
    Starlette = None  # type: ignore[assignment,misc]

__all__ = ["DEFAULT_IDLE_TIMEOUT", "Grant", "Tokens", "create_app", "serve"]

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Grant:
    """What one token may do: act for ``users``, or for any user id when it is None."""

    users: frozenset[str] | None

    def allows(self, user_id: str | None) -> bool:
        return self.users is None or (user_id is not None and user_id in self.users)


class Tokens:
    """The bearer tokens a server accepts and the user ids each may act for.

    :meth:`single` makes the single-token mode; :meth:`from_mapping` and :meth:`from_file`
    (a JSON object ``{"<token>": ["<user id>", ...], ...}``) the per-user mode.
    """

    def __init__(self, grants: dict[str, Grant]) -> None:
        if not grants:
            raise InvalidArgumentError("tokens", "the sandbox server needs at least one token")
        for token in grants:
            if not token or token != token.strip():
                raise InvalidArgumentError(
                    "tokens", "a token must be non-empty, without surrounding spaces"
                )
        self._grants = [(f"Bearer {t}".encode(), grant) for t, grant in grants.items()]
        self.per_user = any(grant.users is not None for grant in grants.values())

    @classmethod
    def single(cls, token: str) -> Tokens:
        """One token, acting for every user id: for a one-tenant deployment."""
        return cls({token: Grant(None)})

    @classmethod
    def from_mapping(cls, mapping: object) -> Tokens:
        """Per-user tokens from ``{"<token>": ["<user id>", ...]}``."""
        if not isinstance(mapping, dict):
            raise InvalidArgumentError("tokens", "must map each token to a list of user ids")
        grants = {}
        for token, users in mapping.items():
            if not isinstance(users, list) or not users:
                raise InvalidArgumentError(
                    "tokens", "each token must map to a non-empty list of user ids"
                )
            grants[str(token)] = Grant(frozenset(check_id(u, "tokens") for u in users))
        return cls(grants)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokens:
        """Per-user tokens from a JSON file, which other users must not be able to read."""
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_mode & stat.S_IROTH:
                raise InvalidArgumentError(
                    "tokens", f"{path} is readable by every user; make it private (chmod 600)"
                )
            try:
                mapping = json.load(handle)
            except ValueError as exc:
                raise InvalidArgumentError("tokens", f"{path} is not JSON: {exc}") from None
        return cls.from_mapping(mapping)

    def grant(self, authorization: str) -> Grant | None:
        """The grant of the ``Authorization`` header's token; None for no known token."""
        given = authorization.encode("utf-8", "surrogateescape")
        found = None
        # Every token is compared, in constant time each, whichever matches.
        for expected, grant in self._grants:
            if hmac.compare_digest(given, expected):
                found = grant
        return found


def _error(status: int, error: dict[str, str], **headers: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _bad_body(status: int, rule: str) -> Response:
    return _error(status, error_to_json(InvalidArgumentError("body", rule))[1])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` levels (an explicit stack, no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


async def _read_arguments(request: Request, limit: int) -> dict[str, Any] | Response:
    """The body's arguments, or the response refusing the body."""
    too_large = f"is larger than the server's {limit} bytes (max_request_bytes)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _bad_body(413, too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _bad_body(413, too_large)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _bad_body(400, "is not UTF-8 JSON")
    try:
        arguments = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return _bad_body(400, f"nests deeper than {MAX_JSON_DEPTH} levels")
    except json.JSONDecodeError as exc:
        return _bad_body(400, f"is not valid JSON: {exc.msg} at character {exc.pos}")
    except ValueError as exc:  # NaN or an infinity, refused by _refuse_constant
        return _bad_body(400, f"is not valid JSON: {exc}")
    if _nests_deeper(arguments, MAX_JSON_DEPTH):
        return _bad_body(400, f"nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(arguments, dict):
        return _bad_body(400, "must be a JSON object of arguments")
    return arguments


def create_app(
    tokens: Tokens, backend: LocalBackend, limits: ServerLimits | None = None
) -> Starlette:
    """The ASGI app serving ``backend``; it starts and stops the backend with the app."""
    if Starlette is None:
        raise MissingExtraError("The sandbox server", "sandbox", "starlette")
    limits = limits or ServerLimits()
    # Counting live sandboxes and creating them is one step, even for concurrent connects.
    connecting = asyncio.Lock()

    def authorize(grant: Grant, operation: str, kwargs: dict[str, Any]) -> None:
        """Raise :class:`SandboxAuthError` (403) unless ``grant`` covers the call."""
        if operation in ("connect", "release"):
            _session_id, user_id = session_key(kwargs["session_id"], kwargs["user_id"])
            if not grant.allows(user_id):
                who = "no user_id" if user_id is None else f"user {user_id!r}"
                raise SandboxAuthError(f"this token may not act for {who}")
        elif operation == "invoke":
            owner = backend.owner(kwargs["sandbox_id"])
            # An unknown sandbox is left to the backend: a 404, and nothing runs.
            if owner is not None and not grant.allows(owner[1]):
                raise SandboxAuthError(f"this token may not use sandbox {kwargs['sandbox_id']!r}")

    def admit(kwargs: dict[str, Any]) -> Response | None:
        """The 429 refusing a connect that would exceed the server's sandbox caps."""
        user_id = kwargs["user_id"]
        new = backend.missing(kwargs["session_id"], user_id, kwargs["sandbox_types"])
        if new and backend.live_sandboxes + new > limits.max_sandboxes:
            message = f"the server holds its maximum of {limits.max_sandboxes} sandboxes"
        elif new and backend.sandboxes_of(user_id) + new > limits.max_sandboxes_per_user:
            message = (
                f"this user holds its maximum of {limits.max_sandboxes_per_user} sandboxes; "
                "release some first"
            )
        else:
            return None
        return _error(429, {"type": "SandboxUnavailableError", "message": message})

    async def endpoint(request: Request) -> Response:
        grant = tokens.grant(request.headers.get("authorization", ""))
        if grant is None:
            unauthorized = {"type": "Unauthorized", "message": "missing or wrong token"}
            return _error(401, unauthorized, **{"WWW-Authenticate": "Bearer"})
        try:
            arguments = await _read_arguments(request, limits.max_request_bytes)
            if isinstance(arguments, Response):
                return arguments
            operation = request.path_params["operation"]
            kwargs = validate_call(SandboxBackend, operation, arguments, owner="the sandbox server")
            authorize(grant, operation, kwargs)
            if operation == "connect":
                async with connecting:
                    refusal = admit(kwargs)
                    if refusal is not None:
                        return refusal
                    result: Any = await backend.connect(**kwargs)
            elif operation == "info":
                result = await info()
            else:
                result = await getattr(backend, operation)(**kwargs)
            return JSONResponse({"result": to_json(result)})
        except Exception as exc:
            status, error = error_to_json(exc)
            if status == 500:
                log.exception("sandbox server request failed")
            return _error(status, error)

    async def info() -> ServiceInfo:
        described = await backend.info()
        return described.model_copy(
            update={
                "max_sandboxes": limits.max_sandboxes,
                "max_sandboxes_per_user": limits.max_sandboxes_per_user,
                "per_user_tokens": tokens.per_user,
            }
        )

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
    tokens: Tokens,
    isolation: IsolationMode = "auto",
    limits: SandboxLimits | None = None,
    server_limits: ServerLimits | None = None,
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
    app = create_app(tokens, backend, server_limits)
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
