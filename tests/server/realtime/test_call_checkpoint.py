"""A worker's call checkpoints: written together, the latest conversation of each call, never
after the call's stream withdrew it (server/realtime/call_checkpoint.py).

The database write is replaced by a recorder (its SQL runs in test_twilio_handover.py and
test_twilio_replica_kill.py); the writer's own period is an hour, so every write here is a
`flush` the test makes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from foundation.metrics import TWILIO_CHECKPOINTS
from server.accounts import Principal
from server.realtime import handover
from server.realtime.call_checkpoint import CallCheckpoints
from server.realtime.handover import Handover

PRINCIPAL = Principal(key_id="key_1", org_id="org_1", agent_id=None)


class Recorder:
    """`handover.save_checkpoints` in memory: each batch as (id, items) pairs; `fail` makes the
    next write raise, `hold` makes it wait until released."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.fail = False
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, db: Any, handovers: list[Handover], expires_at: Any) -> None:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise ConnectionRefusedError("the database is down")
        self.batches.append([(h.id, len(h.items)) for h in handovers])


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorded = Recorder()
    monkeypatch.setattr(handover, "save_checkpoints", recorded)
    return recorded


def draft(handover_id: str) -> Handover:
    return Handover(handover_id, "CA" + handover_id, PRINCIPAL, None, {}, [])


async def test_each_call_is_written_once_a_flush_with_its_latest_conversation(recorder: Recorder) -> None:
    writer = CallCheckpoints(db=None, max_session_seconds=3600, interval=3600)  # type: ignore[arg-type]
    said: list[dict[str, Any]] = []
    a = writer.open(draft("a"), lambda: list(said))
    b = writer.open(draft("b"), list)
    assert await writer.flush() == 2
    said += [{"role": "user"}, {"role": "assistant"}]
    a.changed()
    a.changed()  # twice before a flush: written once, as it is at the flush
    said.append({"role": "user"})
    assert await writer.flush() == 1
    assert await writer.flush() == 0  # nothing changed
    assert recorder.batches == [[("a", 0), ("b", 0)], [("a", 3)]]
    assert (a.written, b.written) == (2, 1)
    await writer.aclose()


async def test_a_stopped_call_is_not_written_after_its_stop(recorder: Recorder) -> None:
    writer = CallCheckpoints(db=None, max_session_seconds=3600, interval=3600)  # type: ignore[arg-type]
    a = writer.open(draft("a"), list)
    recorder.hold = asyncio.Event()
    flushing = asyncio.ensure_future(writer.flush())
    await recorder.started.wait()  # a batch with `a` in it is being written
    stopping = asyncio.ensure_future(a.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # the stream waits for the batch under way
    recorder.hold.set()
    await stopping
    assert await flushing == 1
    a.changed()  # a late event of the session: ignored
    assert await writer.flush() == 0
    await writer.aclose()


async def test_a_failed_batch_is_retried_except_for_calls_that_ended(recorder: Recorder) -> None:
    writer = CallCheckpoints(db=None, max_session_seconds=3600, interval=3600)  # type: ignore[arg-type]
    a = writer.open(draft("a"), list)
    b = writer.open(draft("b"), list)
    recorder.fail = True
    assert await writer.flush() == 0
    await b.stop()
    recorder.fail = False
    assert await writer.flush() == 1
    assert recorder.batches == [[("a", 0)]] and (a.written, b.written) == (1, 0)
    await writer.aclose()


async def test_nothing_is_due_once_the_writer_is_closed(recorder: Recorder) -> None:
    writer = CallCheckpoints(db=None, max_session_seconds=3600, interval=3600)  # type: ignore[arg-type]
    await writer.aclose()
    writer.open(draft("a"), list)
    assert await writer.flush() == 0 and recorder.batches == []


async def test_checkpoints_are_counted_by_outcome(recorder: Recorder) -> None:
    def count(outcome: str) -> float:
        return float(TWILIO_CHECKPOINTS.labels(outcome)._value.get())

    written, failed = count("written"), count("failed")
    writer = CallCheckpoints(db=None, max_session_seconds=3600, interval=3600)  # type: ignore[arg-type]
    writer.open(draft("a"), list)
    writer.open(draft("b"), list)
    recorder.fail = True
    await writer.flush()
    recorder.fail = False
    await writer.flush()
    assert (count("written") - written, count("failed") - failed) == (2, 2)
    await writer.aclose()
