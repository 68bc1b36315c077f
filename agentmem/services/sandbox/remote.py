"""The client side of the sandbox server: the backend's operations, called over HTTP."""

from __future__ import annotations

from typing import Any

from agentmem.errors import BackendError, MissingExtraError, SandboxAuthError, SandboxError
from agentmem.services.sandbox.backend import SandboxBackend
from agentmem.services.sandbox.calls import arguments_to_json, async_proxy, error_from_json

try:
    import httpx
except ImportError:  # pragma: no cover - depends on the installed extras
    httpx = None  # type: ignore[assignment]

__all__ = ["RemoteBackend"]


class RemoteBackend(SandboxBackend):
    """Talks to ``agentmem sandbox-server`` at ``base_url`` with a bearer token.

    Each operation of :class:`SandboxBackend` is one ``POST /v1/<operation>`` whose body
    holds its arguments (see :mod:`.server`), and the server's errors are raised again as
    themselves: 401 as :class:`SandboxAuthError`, like 403 for another user's sandbox.
    ``request_timeout`` bounds one HTTP request; keep it above the server's call timeout.
    """

    def __init__(self, base_url: str, bearer_token: str, *, request_timeout: float) -> None:
        if httpx is None:
            raise MissingExtraError("The remote SandboxService", "sandbox", "httpx")
        self.base_url = base_url.rstrip("/")
        self._token = bearer_token
        self._timeout = request_timeout
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=httpx.Timeout(self._timeout, connect=10.0),
            )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def acall(self, operation: str, /, **arguments: Any) -> Any:
        """Call ``operation`` on the server; returns its JSON result or raises its error."""
        if self._client is None:
            raise SandboxError("the remote sandbox backend is not started")
        body = arguments_to_json(operation, arguments)
        try:
            response = await self._client.post(f"/v1/{operation}", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"sandbox server {self.base_url} unreachable: {exc!r}") from exc
        if response.status_code == 401:
            raise SandboxAuthError(
                f"sandbox server {self.base_url} rejected the bearer token (401)"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise BackendError(
                f"sandbox server answered {response.status_code} with non-JSON: "
                f"{response.text[:200]!r}"
            ) from exc
        if not isinstance(payload, dict):
            raise BackendError(
                f"sandbox server answered {response.status_code}: {response.text[:200]!r}"
            )
        if response.is_success:
            return payload.get("result")
        error = payload.get("error")
        raise error_from_json(error if isinstance(error, dict) else {"message": payload})

    health = async_proxy(SandboxBackend.health)
    info = async_proxy(SandboxBackend.info)
    connect = async_proxy(SandboxBackend.connect)
    release = async_proxy(SandboxBackend.release)
    invoke = async_proxy(SandboxBackend.invoke)
