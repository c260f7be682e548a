"""One timer per upstream response that bounds each wait for it (headers, then every chunk).

`asyncio.timeout` around each wait schedules and cancels a timer per chunk: about 2.9 µs of CPU
each under uvloop, so 60 µs of a 20-chunk stream (docs/performance.md, "One timer per upstream
response"). A `Watchdog` arms one timer and lets every wait only note when it runs out (0.6 µs). When the timer fires it looks at the wait in progress:
- none (the caller is busy between chunks): nothing; the next wait arms it again;
- one that still has time (a later chunk moved the limit on): it re-arms for that limit;
- one that has run out: it cancels the waiting task, and `wait` turns that cancellation into
  `TimeoutError`, exactly as `asyncio.timeout` does (a cancellation from anyone else still
  propagates as `CancelledError`).

Only time spent waiting counts, as with a timeout around each wait: a caller that takes a
minute between two chunks is not a stalled upstream. `close` cancels the timer; the response
that owns the watchdog calls it when it closes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_EARLY = 0.001
"""A timer may fire up to the loop's clock resolution early; within this of the limit counts as
run out, so the timer never re-arms itself for a sliver."""


class Watchdog:
    __slots__ = ("_loop", "_timer", "_armed_for", "_due", "_task", "_cancelling", "_expired")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._due = math.inf  # when the wait in progress runs out; inf between waits
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False

    async def wait(self, awaitable: Awaitable[T], budget: float) -> T:
        """`await awaitable`, raising `TimeoutError` if it takes longer than `budget` seconds."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Watchdog.wait must run inside a task")
        due = self._loop.time() + budget
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._due = due
        if due < self._armed_for:  # no timer yet, or one set for a later limit
            self._arm(due)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= self._cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._due = math.inf

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = math.inf

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._fire)
        self._armed_for = when

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = math.inf
        due = self._due
        if due == math.inf:
            return
        if self._loop.time() + _EARLY < due:
            self._arm(due)
            return
        self._expired = True
        assert self._task is not None
        self._task.cancel()
