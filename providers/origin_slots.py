"""How many calls a worker has open to one upstream origin at once, and the wait for a free one.

One client per origin serves every org, so its bound is shared. When every slot is busy, a call
waits its turn for at most its connect timeout (a slot stands in for a connection), then fails
as `overloaded` with `pool_exhausted` set: the upstream was never asked, so the router moves to
the next candidate without retrying this one or cooling its key down. Waits are counted in
`patchbay_upstream_connection_waits_total`; a call that finds a slot free costs no wait and no
count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from foundation import metrics
from providers.contract import ErrorClass
from providers.errors import ProviderError


class OriginSlots:
    __slots__ = ("_clock", "_free", "held", "last_used", "origin", "size")

    def __init__(self, origin: str, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError("an origin needs at least one connection slot")
        self.origin = origin
        self.size = size
        self._free = asyncio.Semaphore(size)
        self._clock = clock
        self.held = 0
        """Calls holding a slot now."""
        self.last_used = clock()
        """When the last call ended (or the slots were made): how long the origin has been idle."""

    async def take(self, wait: float, provider: str) -> None:
        """Hold a slot until `release`; raises `ProviderError(OVERLOADED, pool_exhausted=True)`
        when none came free within `wait` seconds."""
        free = self._free
        if not free.locked():
            await free.acquire()  # returns at once: nothing to wait for
            self.held += 1
            return
        try:
            async with asyncio.timeout(wait):
                await free.acquire()
        except TimeoutError:
            metrics.observe_connection_wait(provider, "timed_out")
            raise ProviderError(
                ErrorClass.OVERLOADED,
                f"all {self.size:,} of this worker's connections to {self.origin} stayed busy for "
                f"{wait:.3g}s, so the upstream was not called; raise PATCHBAY_UPSTREAM_CONNECTIONS "
                "or add workers (docs/configuration.md)",
                provider=provider,
                pool_exhausted=True,
            ) from None
        self.held += 1
        metrics.observe_connection_wait(provider, "served")

    def release(self) -> None:
        self.held -= 1
        self.last_used = self._clock()
        self._free.release()

    def idle_since(self, moment: float) -> bool:
        """No call holds a slot, and none has ended after `moment`."""
        return self.held == 0 and self.last_used < moment
