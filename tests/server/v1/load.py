"""Chat load for the fault tests: clients sending requests until stopped, and bounded waits
that keep the load going until a condition holds (tests/server/v1/test_redis_restart.py,
test_postgres_restart.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from tests.server.v1.conftest import Patchbay

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
BOUND = 60.0
"""A bound on a hang only: every wait ends as soon as its condition holds."""


class Load:
    """Clients sending chat requests until stopped; every status they got, in order."""

    def __init__(self, patchbay: Patchbay, clients: int = 4) -> None:
        self.patchbay = patchbay
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._client()) for _ in range(clients)]

    async def _client(self) -> None:
        async with self.patchbay.client() as c:
            while not self._stop.is_set():
                self.statuses.append((await c.post("/v1/chat/completions", json=CHAT)).status_code)

    async def until(self, condition: Callable[[], object], what: str) -> None:
        """Keep the load going until `condition()` holds and a few more requests went through."""
        deadline = time.monotonic() + BOUND
        while not condition():
            assert time.monotonic() < deadline, f"{what}: not within {BOUND:g} s"
            await asyncio.sleep(0.05)  # polling a condition the load makes true
        await self.more(8)

    async def more(self, n: int) -> None:
        target = len(self.statuses) + n
        deadline = time.monotonic() + BOUND
        while len(self.statuses) < target:
            assert time.monotonic() < deadline, f"{n} more requests not served within {BOUND:g} s"
            await asyncio.sleep(0.02)  # polling the load's progress

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@contextlib.asynccontextmanager
async def load(patchbay: Patchbay) -> AsyncIterator[Load]:
    running = Load(patchbay)
    try:
        yield running
    finally:
        await running.stop()
