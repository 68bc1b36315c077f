"""Building Tablestore clients, and the connection both Tablestore backends hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from agentmem.services.utils import id_key, import_extra, started

if TYPE_CHECKING:
    import tablestore

__all__ = [
    "TablestoreConnection",
    "TablestoreCredentials",
    "check_end_point",
    "create_tablestore_client",
    "for_each",
    "id_key",
    "import_tablestore",
    "write_all",
]

T = TypeVar("T")

# Row writes and deletes in flight at once.
_CONCURRENCY = 32


def import_tablestore(feature: str) -> Any:
    """The ``tablestore`` module, or :class:`MissingExtraError` naming the extra."""
    return import_extra(feature, "tablestore", "tablestore", "tablestore_for_agent_memory")


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


async def for_each(items: Sequence[T], call: Callable[[T], Awaitable[object]]) -> None:
    """Await ``call`` on every item, a few at a time (Tablestore writes rows one by one).

    The first failure is raised once its whole group has finished, so no call is left
    running behind the caller's back (a clean-up after it cannot race them).
    """
    for start in range(0, len(items), _CONCURRENCY):
        group = items[start : start + _CONCURRENCY]
        results = await asyncio.gather(*(call(item) for item in group), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def write_all(
    rows: Sequence[T],
    write: Callable[[T], Awaitable[object]],
    delete: Callable[[T], Awaitable[object]],
) -> None:
    """Write every row, or none as far as Tablestore lets us: when a write fails, every
    row is deleted again (deleting a missing row is no error) before the error is raised.

    Only a failure of that deletion too can leave some rows written.
    """
    try:
        await for_each(rows, write)
    except BaseException:
        with contextlib.suppress(Exception):
            await for_each(rows, delete)
        raise


class TablestoreCredentials(TypedDict, total=False):
    """What a Tablestore service builds its own client from; the four go together."""

    #: The instance's URL, e.g. ``https://my-instance.cn-hangzhou.ots.aliyuncs.com``.
    end_point: str
    instance_name: str
    access_key_id: str
    access_key_secret: str


class TablestoreConnection:
    """The client and store of one Tablestore service.

    A client handed in is borrowed and never closed; one built from ``end_point``,
    ``instance_name``, ``access_key_id`` and ``access_key_secret`` is built by
    :meth:`open` and closed by :meth:`close`. Without either, ``store_factory`` must be
    given (the store then needs no client, as in tests).
    """

    def __init__(
        self,
        service: object,
        tablestore_client: Any,
        credentials: TablestoreCredentials,
        store_factory: Callable[..., Any] | None,
    ) -> None:
        unknown = sorted(set(credentials) - set(TablestoreCredentials.__annotations__))
        if unknown:
            raise TypeError(f"{type(service).__name__} got unexpected arguments {unknown}")
        given = {name: value for name, value in credentials.items() if value is not None}
        if tablestore_client is not None and given:
            raise ValueError("give tablestore_client or credentials, not both")
        if given and len(given) < len(TablestoreCredentials.__annotations__):
            raise ValueError(
                "end_point, instance_name, access_key_id and access_key_secret go together"
            )
        if tablestore_client is None and not given and store_factory is None:
            raise ValueError(
                "give tablestore_client, or end_point, instance_name, access_key_id and "
                "access_key_secret"
            )
        self._credentials: TablestoreCredentials | None = None
        if given:
            check_end_point(credentials["end_point"])
            self._credentials = credentials
        import_tablestore(type(service).__name__)
        self._service = service
        self.client = tablestore_client
        self._owned = False
        self._store_factory = store_factory
        self._store: Any = None

    @property
    def store(self) -> Any:
        """The open store; ServiceNotStartedError before :meth:`open`."""
        return started(self._service, self._store)

    async def open(self, default_factory: Callable[[], Any], **options: Any) -> None:
        """Build the store and create its tables if missing; idempotent.

        The store is ``store_factory`` (else what ``default_factory`` returns) called
        with the client and ``options``. On failure the client built here is closed.
        """
        if self._store is not None:
            return
        if self.client is None and self._credentials is not None:
            self.client = create_tablestore_client(**self._credentials)
            self._owned = True
        factory = self._store_factory or default_factory()
        try:
            store = factory(tablestore_client=self.client, **options)
            await store.init_table()
        except BaseException:
            await self.close()
            raise
        self._store = store

    async def close(self) -> None:
        """Forget the store; close the client if it was built here."""
        self._store = None
        if self._owned and self.client is not None:
            client, self.client, self._owned = self.client, None, False
            # Closing only releases pooled connections; a failure there loses nothing.
            with contextlib.suppress(Exception):
                await client.close()
