"""Building Tablestore clients, and the conversions the Tablestore backends share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from agentmem.errors import BackendError, MissingExtraError
from agentmem.services.utils import id_key

if TYPE_CHECKING:
    import tablestore

__all__ = [
    "TablestoreClientHolder",
    "check_end_point",
    "create_tablestore_client",
    "id_key",
    "import_tablestore",
    "tablestore_errors",
]


def import_tablestore(feature: str) -> Any:
    """The ``tablestore`` module, or :class:`MissingExtraError` naming the extra."""
    try:
        import tablestore
        import tablestore_for_agent_memory  # noqa: F401 - checked here so errors name the extra
    except ImportError as exc:
        raise MissingExtraError(feature, "tablestore", exc.name) from exc
    return tablestore


def check_end_point(end_point: str) -> str:
    """Return ``end_point`` if it is an http(s) URL, as Tablestore requires."""
    if not end_point.startswith(("https://", "http://")):
        raise ValueError(
            f"end_point must be the instance's URL, e.g. "
            f"https://my-instance.cn-hangzhou.ots.aliyuncs.com, got {end_point!r}"
        )
    return end_point


def create_tablestore_client(
    end_point: str,
    instance_name: str,
    access_key_id: str,
    access_key_secret: str,
    sts_token: str | None = None,
    **client_kwargs: Any,
) -> tablestore.AsyncOTSClient:
    """An ``AsyncOTSClient`` for one Tablestore instance; it connects on its first request.

    ``end_point`` is the instance's URL, e.g.
    ``https://my-instance.cn-hangzhou.ots.aliyuncs.com``. ``client_kwargs`` go to
    ``AsyncOTSClient`` (``socket_timeout``, ``retry_policy``...). The caller owns the
    client: close it with ``await client.close()`` when done.
    """
    for name, value in (
        ("end_point", end_point),
        ("instance_name", instance_name),
        ("access_key_id", access_key_id),
        ("access_key_secret", access_key_secret),
    ):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    check_end_point(end_point)
    sdk = import_tablestore("create_tablestore_client")
    client: tablestore.AsyncOTSClient = sdk.AsyncOTSClient(
        end_point,
        access_key_id,
        access_key_secret,
        instance_name,
        sts_token=sts_token,
        **client_kwargs,
    )
    return client


@contextlib.contextmanager
def tablestore_errors(action: str) -> Iterator[None]:
    """Map the SDK's and the network's exceptions to :class:`BackendError`.

    Argument errors (``ValueError``/``TypeError``) pass unchanged.
    """
    try:
        yield
    except (ValueError, TypeError, BackendError):
        raise
    except Exception as exc:  # OTSClientError, OTSServiceError, aiohttp and OS errors
        raise BackendError(f"Tablestore {action} failed: {type(exc).__name__}: {exc}") from exc


class TablestoreClientHolder:
    """The client of a Tablestore service: borrowed, or built from credentials and owned.

    A client handed in is borrowed and never closed; one built from ``end_point``,
    ``instance_name``, ``access_key_id`` and ``access_key_secret`` is built on
    :meth:`acquire` and closed on :meth:`release`. Without either, ``store_factory``
    must be given (the store then needs no client, as in tests).
    """

    def __init__(
        self,
        feature: str,
        tablestore_client: Any,
        credentials: tuple[str | None, str | None, str | None, str | None],
        store_factory: object,
    ) -> None:
        if tablestore_client is not None and any(credentials):
            raise ValueError("give tablestore_client or credentials, not both")
        if any(credentials) and not all(credentials):
            raise ValueError(
                "end_point, instance_name, access_key_id and access_key_secret go together"
            )
        if tablestore_client is None and not any(credentials) and store_factory is None:
            raise ValueError(
                "give tablestore_client, or end_point, instance_name, access_key_id and "
                "access_key_secret"
            )
        end_point, instance_name, access_key_id, access_key_secret = credentials
        self._credentials: tuple[str, str, str, str] | None = None
        if end_point and instance_name and access_key_id and access_key_secret:
            check_end_point(end_point)
            self._credentials = (end_point, instance_name, access_key_id, access_key_secret)
        import_tablestore(feature)
        self.client = tablestore_client
        self._owned = False

    def acquire(self) -> Any:
        """The client, built now if the service owns it."""
        if self.client is None and self._credentials is not None:
            self.client = create_tablestore_client(*self._credentials)
            self._owned = True
        return self.client

    async def open_store(self, make_store: Callable[[Any], Any], action: str) -> Any:
        """The store ``make_store`` builds on the client, its tables created.

        Raises :class:`BackendError` (for ``action``) when Tablestore cannot be reached,
        after releasing the client.
        """
        store = make_store(self.acquire())
        try:
            with tablestore_errors(action):
                await store.init_table()
        except BaseException:
            await self.release()
            raise
        return store

    async def release(self) -> None:
        """Close the client if it was built here; a borrowed one stays open."""
        if self._owned and self.client is not None:
            client, self.client, self._owned = self.client, None, False
            # Closing only releases pooled connections; a failure there loses nothing.
            with contextlib.suppress(Exception):
                await client.close()
