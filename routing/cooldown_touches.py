"""The Redis cooldown store's queued successes: a success that only moves a profile's
`last_used` (nearly every request) is written behind the request, so its answer does not wait.

Each profile's latest success goes out at most once per `every` seconds, those queued meanwhile
together (`write` decides how: `RedisCooldownStore` compare-and-sets the value it last read).
Until written, the store reads its own queued success back (`get`); a newer write to the profile
(a failure, a clear, another replica's notice) drops it (`drop`), never to be written over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

log = logging.getLogger("patchbay.routing")


class Touch(NamedTuple):
    """A success that only moves `last_used`."""

    org_id: str
    profile_id: str
    model: str
    now: float


class QueuedTouches:
    def __init__(self, write: Callable[[str, Touch], Awaitable[None]], every: float) -> None:
        """`write(key, touch)` writes one; `every`: seconds between rounds (0: as soon as the loop turns)."""
        self._write = write
        self._every = every
        self._queued: dict[str, Touch] = {}
        self._writing: asyncio.Task[None] | None = None
        self._flushing = asyncio.Event()

    def get(self, key: str) -> Touch | None:
        return self._queued.get(key)

    def drop(self, key: str) -> None:
        self._queued.pop(key, None)

    def queue(self, key: str, touch: Touch) -> None:
        self._queued[key] = touch
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_all(), name="cooldown touches")

    async def _write_all(self) -> None:
        while self._queued:
            # What queued meanwhile goes out together: each profile's latest success, at most
            # once per `every` (the store reads its own back until then).
            if self._every > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flushing.wait(), self._every)
            else:
                await asyncio.sleep(0)
            self._flushing.clear()
            for key, touch in list(self._queued.items()):
                try:
                    await self._write(key, touch)
                except Exception:
                    log.exception("a cooldown success write failed")
                # Read back from here until written; a newer success for the key goes next round.
                if self._queued.get(key) == touch:
                    del self._queued[key]

    async def flush(self) -> None:
        """Write the successes held behind now, and wait until they are written (tests, shutdown)."""
        while self._writing is not None and not self._writing.done():
            self._flushing.set()
            await asyncio.shield(self._writing)
