"""Background tasks stop between units of work: a write under way when its owner closes ends
before the task is cancelled (a cancelled SQLite write kept the database locked for the
closing flush)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from foundation import background
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


async def test_a_unit_that_never_ends_is_cut_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hung upstream call must not hold a stop for ever: past the wait it is cancelled.
    monkeypatch.setattr(background, "UNIT_WAIT_SECONDS", 0.01)
    inside = asyncio.Event()
    cut: list[str] = []

    async def run() -> None:
        async with task.working():
            inside.set()
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                cut.append("cancelled")
                raise

    task = background.BackgroundTask("hung", run)
    task.start()
    await inside.wait()
    await task.stop()
    assert cut == ["cancelled"] and not task.running
