"""The outbox: FIFO order, and cancellation that purges and refuses a response's output."""

from __future__ import annotations

import asyncio

from voice import events as ev
from voice.outbox import Outbox


def test_cancel_purges_queued_output_and_refuses_later_output() -> None:
    box = Outbox()
    box.put(ev.ResponseCreated("r1", ("audio",)))
    box.put(ev.AudioDelta("r1", "i1", b"a"))
    box.put(ev.AudioDelta("r2", "i2", b"b"))
    box.put(ev.TranscriptDelta("r1", "i1", "x"))
    box.put(ev.FunctionCallArgumentsDelta("r1", "i3", "call_1", '{"city"', 1))
    box.cancel("r1")
    assert not box.put(ev.AudioDelta("r1", "i1", b"late"))
    assert not box.put(ev.FunctionCallArgumentsDelta("r1", "i3", "call_1", ': "Paris"}', 1))
    assert box.put(ev.ResponseDone("r1", "cancelled", "turn_detected", ()))
    out = []
    while (event := box.get_nowait()) is not None:
        out.append(event)
    assert [type(e).__name__ for e in out] == ["ResponseCreated", "AudioDelta", "ResponseDone"]
    assert out[1] == ev.AudioDelta("r2", "i2", b"b")
    assert box.dropped == 5


def test_only_output_events_are_cancellable() -> None:
    assert ev.AudioDelta.cancellable and ev.TranscriptDelta.cancellable and ev.TextDelta.cancellable
    assert ev.FunctionCallArgumentsDelta.cancellable
    assert (
        not ev.ResponseDone.cancellable
        and not ev.OutputItemDone.cancellable
        and not ev.OutputItemAdded.cancellable
        and not ev.SpeechStarted.cancellable
    )


async def test_get_waits_for_the_next_event() -> None:
    import asyncio

    box = Outbox()
    waiter = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(ev.InputCleared())
    assert await waiter == ev.InputCleared()


async def test_a_place_kept_for_a_later_event_holds_back_what_follows_until_it_is_given() -> None:
    box = Outbox()
    box.put(ev.ResponseCreated("r1", ("audio",)))
    place = box.put_later()
    box.put(ev.ResponseCreated("r2", ("audio",)))
    assert box.get_nowait() == ev.ResponseCreated("r1", ("audio",))
    assert box.get_nowait() is None  # r2 waits behind the place
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    place.set_result(ev.ResponseDone("r1", "cancelled", "client_cancelled", ()))
    assert await waiting == ev.ResponseDone("r1", "cancelled", "client_cancelled", ())
    assert box.get_nowait() == ev.ResponseCreated("r2", ("audio",))
