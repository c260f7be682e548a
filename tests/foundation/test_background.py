"""Background tasks stop between units of work: a write under way when its owner closes ends
before the task is cancelled (a cancelled SQLite write kept the database locked for the
closing flush)."""

from __future__ import annotations

import asyncio
import logging

from foundation.background import BackgroundTask, PeriodicTask


async def test_stop_lets_the_unit_of_work_under_way_finish() -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def run() -> None:
        while True:
            async with task.working():
                inside.set()
                await release.wait()
                finished.append("write")
            await asyncio.Event().wait()  # idle until cancelled

    task = BackgroundTask("writer", run)
    task.start()
    await inside.wait()
    stopping = asyncio.create_task(task.stop())
    # The write can go on only after `stop` has begun: a cancel at that point would land in it.
    release.set()
    await stopping
    assert finished == ["write"]
    assert not task.running


async def test_stop_cancels_a_task_waiting_between_units() -> None:
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        await asyncio.Event().wait()

    task = BackgroundTask("idle", run)
    task.start()
    await started.wait()
    await task.stop()
    assert not task.running


async def test_a_periodic_step_under_way_ends_before_the_task_stops() -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    steps: list[int] = []

    async def step() -> None:
        inside.set()
        await release.wait()
        steps.append(len(steps))

    periodic = PeriodicTask("sweeper", step, 3600, log=logging.getLogger("test"), what="sweep")
    periodic.start()
    await inside.wait()
    stopping = asyncio.create_task(periodic.stop())
    release.set()
    await stopping
    assert steps == [0] and not periodic.running
