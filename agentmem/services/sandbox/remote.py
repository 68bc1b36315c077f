"""The client side of the sandbox server: the same backend interface over HTTP."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from agentmem.errors import BackendError, MissingExtraError, NotFoundError
from agentmem.services.sandbox.backend import SandboxBackend
from agentmem.services.sandbox.errors import (
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)
from agentmem.services.sandbox.models import SandboxDescriptor, ServiceInfo

try:
    import httpx
except ImportError:  # pragma: no cover - depends on the installed extras
    httpx = None  # type: ignore[assignment]

__all__ = ["RemoteBackend"]

_DESCRIPTORS = TypeAdapter(list[SandboxDescriptor])
# Errors the server reports by name and the client raises again as the same type.
_ERRORS: dict[str, type[Exception]] = {
    "SandboxError": SandboxError,
    "SandboxPathError": SandboxPathError,
    "SandboxUnavailableError": SandboxUnavailableError,
    "NotFoundError": NotFoundError,
    "ValueError": ValueError,
}


class RemoteBackend(SandboxBackend):
    """Talks to ``agentmem sandbox-server`` at ``base_url`` with a bearer token.

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

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        if self._client is None:
            raise SandboxError("the remote sandbox backend is not started")
        try:
            response = await self._client.request(method, f"/v1{path}", json=body)
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
        if response.is_success:
            return payload
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        message = str(error.get("message", response.text[:200]))
        raise _ERRORS.get(str(error.get("type")), BackendError)(
            message if error.get("type") in _ERRORS else f"sandbox server: {message}"
        )

    async def health(self) -> bool:
        try:
            return bool((await self._request("GET", "/health"))["healthy"])
        except Exception:
            return False

    async def info(self) -> ServiceInfo:
        info = ServiceInfo.model_validate(await self._request("GET", "/info"))
        return info.model_copy(update={"remote": True, "base_url": self.base_url})

    async def connect(
        self, session_id: str, user_id: str | None, sandbox_types: list[str]
    ) -> list[SandboxDescriptor]:
        body = {"session_id": session_id, "user_id": user_id, "sandbox_types": sandbox_types}
        return _DESCRIPTORS.validate_python(await self._request("POST", "/connect", body))

    async def release(self, session_id: str, user_id: str | None) -> int:
        body = {"session_id": session_id, "user_id": user_id}
        return int((await self._request("POST", "/release", body))["released"])

    async def invoke(self, sandbox_id: str, tool: str, arguments: dict[str, Any]) -> Any:
        return (await self._request("POST", f"/sandboxes/{sandbox_id}/{tool}", arguments))["result"]
