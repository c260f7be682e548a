"""An ended voice session is freed as it ends: no reference cycle keeps it for the collector.

A session that only a full collection can free stays in memory, with its conversation, until
the next one, and is walked by every collection of the oldest generation until then: under
call churn that is most of the heap the collector walks. These tests end sessions in the ways
calls end (after a finished turn, mid-reply, with a reply speculated at a pause, after a
barge-in) with the cyclic collector switched off, and require the session to be gone at once.
A failure lists the objects that were left in cycles, by type.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

import pytest

from tests.collector import cycles_left
from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeTTS
from tests.voice.speech import silence, speak
from tests.voice.test_partials import FIRST
from tests.voice.test_session import drain, feed, make_session, spoken_turn
from tests.voice.test_speculation import SENTENCE, echoing
from tests.voice.test_speculation import Session as Speculating
from voice import events as ev
from voice.session import VoiceSession


async def ended(session: VoiceSession) -> weakref.ref[VoiceSession]:
    await session.aclose()
    drain(session)
    # Done callbacks of its last tasks are queued on the loop now; each turn of the loop runs
    # the ones queued before it.
    for _ in range(3):
        await asyncio.sleep(0)
    return weakref.ref(session)


async def after_a_finished_turn() -> weakref.ref[VoiceSession]:
    session = make_session()
    await feed(session, spoken_turn())
    await session.idle()
    return await ended(session)


async def mid_reply() -> weakref.ref[VoiceSession]:
    llm = FakeLLM(hold_after=1)
    session = make_session(llm=llm, tts=FakeTTS(sample_rate=24_000, chunks=50, chunk_ms=20))
    await feed(session, spoken_turn())
    await llm.state.holding.wait()
    return await ended(session)


async def with_a_reply_held_at_a_pause() -> weakref.ref[VoiceSession]:
    # A complete sentence, then a pause shorter than the turn's end: the reply is started and held.
    held = Speculating(echoing(SENTENCE), silence_duration_ms=800, sentence_silence_ms=700)
    await held.hear(silence(300) + speak(FIRST) + silence(300))
    assert len(held.llm.state.requests) == 1 and not held.of(ev.ResponseCreated)
    return await ended(held.session)


async def after_a_barge_in() -> weakref.ref[VoiceSession]:
    llm = FakeLLM(hold_after=1)
    session = make_session(llm=llm, tts=FakeTTS(sample_rate=24_000, chunks=50, chunk_ms=20))
    await feed(session, spoken_turn())
    while not isinstance(await session.outbox.get(), ev.AudioDelta):
        pass
    await feed(session, speak("Wait, stop.") + silence(800))
    llm.gate.set()
    await session.idle()
    return await ended(session)


@pytest.mark.parametrize(
    "end", [after_a_finished_turn, mid_reply, with_a_reply_held_at_a_pause, after_a_barge_in]
)
async def test_an_ended_session_is_freed_without_the_collector(
    collector_off: None, end: Callable[[], Awaitable[weakref.ref[VoiceSession]]]
) -> None:
    gone = await end()
    alive = gone() is not None
    left = cycles_left() if alive else ""  # read with no reference to the session held here
    assert not alive, f"the ended session was left in reference cycles: {left}"
