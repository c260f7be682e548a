from __future__ import annotations

import asyncio
import threading

import pytest

from voice.stt.worker import BlockingRunner


class Gate:
    """A blocking job whose start the test can await and whose end the test releases."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.thread: str | None = None

    def __call__(self, value: int) -> int:
        self.thread = threading.current_thread().name
        self.started.set()
        if not self.release.wait(timeout=10):
            raise TimeoutError("test never released the job")
        return value * 2


async def started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.started.wait, 10)


async def test_runs_in_its_own_threads_and_returns_the_result() -> None:
    runner = BlockingRunner(1, name="unit")
    gate = Gate()
    gate.release.set()
    assert await runner.run(gate, 21) == 42
    assert gate.thread is not None and gate.thread.startswith("unit")
    runner.close()


async def test_admits_at_most_limit_calls_at_once() -> None:
    runner = BlockingRunner(2, name="unit")
    gates = [Gate() for _ in range(4)]
    tasks = [asyncio.create_task(runner.run(gate, i)) for i, gate in enumerate(gates)]
    await started(gates[0])
    await started(gates[1])
    assert runner.busy == 2
    assert not gates[2].started.is_set() and not gates[3].started.is_set()

    gates[0].release.set()
    assert await tasks[0] == 0
    await started(gates[2])
    assert runner.busy == 2
    for gate in gates[1:]:
        gate.release.set()
    assert await asyncio.gather(*tasks[1:]) == [2, 4, 6]
    assert runner.busy == 0
    runner.close()


async def test_a_cancelled_call_keeps_its_slot_until_the_thread_finishes() -> None:
    runner = BlockingRunner(1, name="unit")
    gate = Gate()
    task = asyncio.create_task(runner.run(gate, 1))
    await started(gate)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    follower_gate = Gate()
    follower = asyncio.create_task(runner.run(follower_gate, 5))
    await asyncio.sleep(0)
    # The cancelled job still occupies the only thread, so the follower must wait.
    assert runner.busy == 1 and not follower_gate.started.is_set()
    gate.release.set()
    follower_gate.release.set()
    assert await follower == 10
    assert runner.busy == 0
    runner.close()


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BlockingRunner(0, name="unit")
