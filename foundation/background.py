"""One background task a long-lived object runs while the process serves: started once,
cancelled and awaited when the object closes. The writers, sweepers and pollers share it.

A task that writes to the database holds `working()` around each write: `stop` waits for the
write under way to end and cancels the task only between writes. A write cancelled half-way
leaves its statement running on the driver's side; on SQLite its connection then holds the
write lock while the closing flush waits for it (`PRAGMA busy_timeout`, 5 s) and fails, and
what was left in the buffer was lost with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

UNIT_WAIT_SECONDS = 10.0
"""How long `stop` waits for a unit of work under way before cancelling it anyway."""


class BackgroundTask:
    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._working = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Start the task unless it was started already; True when this call started it."""
        if self._task is not None:
            return False
        self._task = asyncio.create_task(self._run(), name=self.name)
        return True

    def working(self) -> asyncio.Lock:
        """Held by the task around a unit of work `stop` must not cut in half (a write)."""
        return self._working

    async def stop(self) -> None:
        """Cancel the task, between units of work, and wait for it to end (nothing to do when
        it never started)."""
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(UNIT_WAIT_SECONDS):
                    await self._working.acquire()
            except TimeoutError:
                task.cancel()  # a unit this slow (a hung upstream call) is cut, not waited out
            else:
                try:
                    task.cancel()
                finally:
                    self._working.release()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class PeriodicTask:
    """`step` every `interval` seconds while the process serves (the sweepers and reporters): a
    failed step is logged as `<what> failed` with its exception type only, and the next runs on
    schedule. `start`, `stop` and `running` as `BackgroundTask`."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Coroutine[Any, Any, object]],
        interval: float,
        *,
        log: logging.Logger,
        what: str,
    ) -> None:
        self._step = step
        self._interval = interval
        self._log = log
        self._what = what
        self._background = BackgroundTask(name, self._loop)

    @property
    def running(self) -> bool:
        return self._background.running

    def start(self) -> bool:
        return self._background.start()

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            try:
                async with self._background.working():
                    await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning(f"{self._what} failed", extra={"fields": {"error": type(exc).__name__}})
            await asyncio.sleep(self._interval)
