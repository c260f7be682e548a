"""An injectable clock, so engine timings and turn timers can be tested on virtual time.

Audio offsets (speech started/stopped) never come from a clock: they are counted in
samples. A clock only measures wall-time things such as time-to-first-audio and timeouts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """Virtual time that moves only when a test calls `advance`.

    Sleepers wake, in deadline order, once `advance` carries the clock past their deadline;
    `advance` yields to the event loop so the woken tasks run before it returns.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), waiter))
        await waiter

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    async def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, waiter = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not waiter.done():
                waiter.set_result(None)
                # Let the woken task run (and perhaps sleep again) before time moves on.
                for _ in range(3):
                    await asyncio.sleep(0)
        self._now = target
