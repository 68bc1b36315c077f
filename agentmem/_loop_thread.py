"""A private event loop running in a daemon thread, shared by the synchronous facades.

Connections, kernel clients and subprocesses belong to the loop that created them. Keeping
them on one loop of their own lets callers reach them from any loop (``await run(...)``)
or from no loop at all (``run_sync``), e.g. in a Jupyter cell or a worker thread, with no
patching of :mod:`asyncio`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Starts its thread on first use; :meth:`close` stops it (it can start again later).

    ``reentry_hint`` completes the error raised when ``run_sync`` is called from the
    loop's own thread, where blocking would wait for itself forever.
    """

    def __init__(self, name: str, reentry_hint: str) -> None:
        self._name = name
        self._reentry_hint = reentry_hint
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                    loop.close()

                self._thread = threading.Thread(target=main, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            loop = self._ensure()
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException:
            coro.close()
            raise

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the private loop from any loop; cancelling cancels it there."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the private loop and block until it is done.

        After ``timeout`` seconds, or when the wait is interrupted, ``coro`` is cancelled
        and the exception (``TimeoutError``, ``KeyboardInterrupt``...) propagates.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                f"a blocking call was made from inside the {self._name} loop, where it "
                f"would wait for itself; {self._reentry_hint}"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and join the thread; call after everything on it finished."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
