from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from typing import Any

import pytest

from providers.speech.caller import speaking_for
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
    runner = BlockingRunner(2, name="unit", per_caller=2)
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
    with pytest.raises(ValueError):
        BlockingRunner(2, name="unit", per_caller=3)


async def test_the_loop_keeps_serving_while_a_job_works() -> None:
    """The job can only finish once a coroutine on the loop has run; on the loop it would
    time out waiting for it instead."""
    runner = BlockingRunner(1, name="unit")
    gate = Gate()
    job = asyncio.create_task(runner.run(gate, 4))
    await started(gate)

    async def other_tenant() -> None:
        gate.release.set()

    await other_tenant()
    assert await job == 8
    runner.close()


async def test_one_caller_cannot_take_every_slot() -> None:
    runner = BlockingRunner(2, name="unit")
    first, second, other = Gate(), Gate(), Gate()

    def submit(caller: str, gate: Gate, value: int) -> asyncio.Task[int]:
        with speaking_for(caller):
            return asyncio.create_task(runner.run(gate, value))

    tasks = [submit("key_a", first, 1), submit("key_a", second, 2)]
    await started(first)
    # key_a has used its share (one of two slots): its second job waits without a slot, and
    # key_b's job, arriving later, is admitted ahead of it.
    tasks.append(submit("key_b", other, 3))
    await started(other)
    assert not second.started.is_set()
    assert runner.running_for("key_a") == 1 and runner.running_for("key_b") == 1

    first.release.set()
    await started(second)
    second.release.set()
    other.release.set()
    assert await asyncio.gather(*tasks) == [2, 4, 6]
    assert runner.busy == 0
    runner.close()


async def test_freed_slots_take_turns_between_the_keys_in_line() -> None:
    runner = BlockingRunner(1, name="unit")
    gates = {name: Gate() for name in ("a1", "a2", "a3", "b1")}

    def submit(name: str) -> asyncio.Task[int]:
        with speaking_for(f"key_{name[0]}"):
            return asyncio.create_task(runner.run(gates[name], 0))

    tasks = [submit("a1")]
    await started(gates["a1"])
    tasks += [submit("a2"), submit("a3"), submit("b1")]
    await asyncio.sleep(0)  # let them all get in line
    gates["a1"].release.set()
    # key_b's one job goes before key_a's queued ones, though it arrived after them.
    await started(gates["a2"])
    gates["a2"].release.set()
    await started(gates["b1"])
    assert not gates["a3"].started.is_set()
    for gate in gates.values():
        gate.release.set()
    await asyncio.gather(*tasks)
    runner.close()


def wait_for_loop(event: Any) -> int:
    """A job for a worker process: done once the parent's loop sets `event`."""
    if not event.wait(timeout=30):
        raise TimeoutError("the event loop never ran while the job worked")
    return os.getpid()


async def test_a_process_job_leaves_the_loop_and_its_gil_free() -> None:
    runner = BlockingRunner(1, name="unit", processes=True)
    with multiprocessing.get_context("spawn").Manager() as manager:
        event = manager.Event()
        job = asyncio.create_task(runner.run(wait_for_loop, event))
        await asyncio.sleep(0)  # let the job be submitted
        await asyncio.to_thread(event.set)
        assert await job != os.getpid()
    runner.close()
