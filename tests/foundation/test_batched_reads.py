"""Keys read together in one call; a batch in flight never holds up later keys; failures reach
every caller of their batch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from foundation.batched_reads import BatchedReads

HANG_GUARD = 30.0
"""Only a bound on a broken test: nothing here waits on time."""


async def test_keys_queued_in_one_turn_are_read_together() -> None:
    calls: list[list[str]] = []

    async def read_many(keys: list[str]) -> Mapping[str, int]:
        calls.append(keys)
        return {k: len(k) for k in keys if k != "missing"}

    reads: BatchedReads[str, int] = BatchedReads(read_many)
    got = await asyncio.gather(reads.read("a"), reads.read("bb"), reads.read("a"), reads.read("missing"))
    assert got == [1, 2, 1, None] and calls == [["a", "bb", "missing"]]


async def test_a_batch_in_flight_does_not_hold_up_later_keys() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def read_many(keys: list[str]) -> Mapping[str, str]:
        if "slow" in keys:
            entered.set()
            await release.wait()
        return {k: k.upper() for k in keys}

    reads: BatchedReads[str, str] = BatchedReads(read_many)
    slow = asyncio.ensure_future(reads.read("slow"))
    await asyncio.wait_for(entered.wait(), HANG_GUARD)
    assert await asyncio.wait_for(reads.read("fast"), HANG_GUARD) == "FAST"
    assert not slow.done()
    release.set()
    assert await slow == "SLOW"


async def test_a_full_batch_starts_at_once_and_errors_reach_each_caller() -> None:
    calls: list[list[int]] = []

    async def read_many(keys: list[int]) -> Mapping[int, int]:
        calls.append(keys)
        raise RuntimeError("database down")

    reads: BatchedReads[int, int] = BatchedReads(read_many, max_batch=2)
    results = await asyncio.gather(*(reads.read(i) for i in range(3)), return_exceptions=True)
    assert [sorted(c) for c in calls] == [[0, 1], [2]]
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError, match="database down"):
        await reads.read(7)
