"""Reads of many keys that arrive together, made as one: the cold-start seam of the caches.

When many orgs make their first request at once (a replica starting, caches warming), each would
read its rows with its own queries. `BatchedReads.read(key)` instead queues the key; the keys
queued by the end of the current event-loop turn are read together by one call of `read_many`
(`WHERE id IN (...)`), and every caller gets its own value. A read in flight never holds up
keys queued after it: those start a batch of their own, up to `max_in_flight` batches at once;
beyond that they wait for a free slot (as they would for a database connection anyway) and
whatever queued meanwhile goes into one read.
A failed batch fails each of its callers with the same error.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BatchedReads(Generic[K, V]):
    def __init__(
        self,
        read_many: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        max_batch: int = 100,
        max_in_flight: int = 4,
    ) -> None:
        """`read_many(keys)`: the values of those keys that exist (a missing key reads None)."""
        self._read_many = read_many
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queued: dict[K, asyncio.Future[V | None]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, key: K) -> V | None:
        future = self._queued.get(key)
        if future is None:
            future = self._queued[key] = asyncio.get_running_loop().create_future()
            if len(self._queued) >= self._max_batch:
                self._start()
            elif not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start)
        return await asyncio.shield(future)

    def _start(self) -> None:
        self._scheduled = False
        if not self._queued:
            return
        task = asyncio.ensure_future(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        async with self._slots:
            # The batch is taken once a slot is free, so keys queued while every slot was busy
            # go together into the next read instead of one read each.
            keys = list(itertools.islice(self._queued, self._max_batch))
            if not keys:
                return
            batch = {key: self._queued.pop(key) for key in keys}
            if self._queued:
                self._start()
            try:
                values = await self._read_many(keys)
            except asyncio.CancelledError:
                for future in batch.values():
                    future.cancel()
                raise
            except Exception as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                        future.exception()  # retrieved: every waiter may have given up
                return
        for key, future in batch.items():
            if not future.done():
                future.set_result(values.get(key))
