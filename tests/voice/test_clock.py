from __future__ import annotations

import asyncio

from voice.clock import SYSTEM_CLOCK, ManualClock


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(start=10.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("late", 2.0)), asyncio.create_task(sleeper("early", 0.5))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2

    await clock.advance(1.0)
    assert woke == [("early", 10.5)]
    assert clock.now() == 11.0

    await clock.advance(1.0)
    assert woke == [("early", 10.5), ("late", 12.0)]
    await asyncio.gather(*tasks)


async def test_system_clock_is_monotonic() -> None:
    first = SYSTEM_CLOCK.now()
    await SYSTEM_CLOCK.sleep(0)
    assert SYSTEM_CLOCK.now() >= first
