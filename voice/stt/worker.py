"""Run a local model's blocking calls off the event loop, a bounded number at a time.

The internal STT engines decode on the CPU for hundreds of milliseconds; doing that on the
event loop would stall every session in the process. `BlockingRunner` runs such calls in
its own small thread pool and admits at most `limit` at once. A slot is held until the
thread really finishes, even when the awaiting task is cancelled (a thread cannot be
interrupted), so cancelled work never lets the CPU be oversubscribed or a non-thread-safe
model be entered twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class BlockingRunner:
    def __init__(self, limit: int, *, name: str) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name)
        # Asyncio primitives belong to one loop; a runner built at import time may serve
        # several loops over its life (tests do), so the semaphore follows the running loop.
        self._waiters: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0

    @property
    def busy(self) -> int:
        """Calls currently running in a thread (including ones whose caller gave up)."""
        return self._busy

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        waiters = self._waiters
        if waiters is None or self._loop is not loop:
            waiters = self._waiters = asyncio.Semaphore(self.limit)
            self._loop = loop
        await waiters.acquire()
        try:
            self._busy += 1
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._busy -= 1
            waiters.release()
            raise

        def finished(_: concurrent.futures.Future[T]) -> None:
            # A closed loop raises RuntimeError; then nobody is waiting for the slot any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finish, waiters)

        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _finish(self, waiters: asyncio.Semaphore) -> None:
        self._busy -= 1
        waiters.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
