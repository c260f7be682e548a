"""The upstream watchdog: only waiting counts, a late limit re-arms, others' cancellations pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from providers.watchdog import Watchdog

T = TypeVar("T")

GUARD = 5.0  # far beyond every budget below: reaching it means the watchdog never fired


async def _finished(body: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
    """Run `body` in a task and return it once done, or fail the test at GUARD."""
    task = asyncio.create_task(body())
    done, _ = await asyncio.wait({task}, timeout=GUARD)
    if not done:
        task.cancel()
        pytest.fail("the wait was never bounded")
    return task


def _resolved_after(seconds: float, value: str) -> asyncio.Future[str]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_later(seconds, future.set_result, value)
    return future


async def test_a_wait_that_outlasts_its_budget_times_out() -> None:
    async def body() -> None:
        watchdog = Watchdog()
        try:
            await watchdog.wait(asyncio.get_running_loop().create_future(), 0.05)
        finally:
            watchdog.close()

    task = await _finished(body)
    assert isinstance(task.exception(), TimeoutError)


async def test_time_between_waits_does_not_count() -> None:
    async def body() -> list[str]:
        watchdog = Watchdog()
        got = []
        try:
            for n in range(3):
                got.append(await watchdog.wait(_resolved_after(0, str(n)), 0.05))
                await asyncio.sleep(0.12)  # the caller busy with a chunk for longer than the budget
        finally:
            watchdog.close()
        return got

    task = await _finished(body)
    assert task.result() == ["0", "1", "2"]


async def test_each_wait_gets_its_own_budget() -> None:
    # Eight waits of 0.1 s under a 0.5 s budget: 0.8 s in all, so the timer set for the first
    # limit fires during a later wait and must re-arm for that wait's limit, not time it out.
    async def body() -> int:
        watchdog = Watchdog()
        try:
            for n in range(8):
                await watchdog.wait(_resolved_after(0.1, str(n)), 0.5)
        finally:
            watchdog.close()
        return 8

    task = await _finished(body)
    assert task.result() == 8


async def test_a_sooner_limit_re_arms_the_timer() -> None:
    async def body() -> None:
        watchdog = Watchdog()
        try:
            await watchdog.wait(_resolved_after(0, "headers"), 60)  # arms the timer a minute out
            await watchdog.wait(asyncio.get_running_loop().create_future(), 0.05)
        finally:
            watchdog.close()

    task = await _finished(body)
    assert isinstance(task.exception(), TimeoutError)


async def test_another_cancellation_is_not_a_timeout() -> None:
    waiting = asyncio.Event()

    async def body() -> None:
        watchdog = Watchdog()
        try:
            future = asyncio.get_running_loop().create_future()
            waiting.set()
            await watchdog.wait(future, 60)
        finally:
            watchdog.close()

    task = asyncio.create_task(body())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_timeout_leaves_the_task_usable() -> None:
    # The cancellation the watchdog used is taken back: the task goes on awaiting afterwards.
    async def body() -> str:
        watchdog = Watchdog()
        try:
            with pytest.raises(TimeoutError):
                await watchdog.wait(asyncio.get_running_loop().create_future(), 0.05)
            return await watchdog.wait(_resolved_after(0.01, "after"), 1)
        finally:
            watchdog.close()

    task = await _finished(body)
    assert task.result() == "after"
    assert task.cancelling() == 0
