"""When a session is quiet: the moment a draining server may close a resuming client's session.

Quiet means the session could end now losing nothing the client would carry over: the caller
is not speaking (nor, without server VAD, has audio waiting for a commit), no transcription or
response runs, and the last reply has had time to play out at the client. Real speech runs
through the real VAD; the engines are fakes and the clock is virtual, so every step is exact.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeTTS
from tests.voice.speech import silence, speak
from tests.voice.test_session import QUESTION, drain, feed, make_session, spoken_turn
from voice import events as ev
from voice.audio import PCM16_16K
from voice.clock import ManualClock
from voice.config import SessionConfig
from voice.session import PLAYOUT_MARGIN

REPLY_SECONDS = 2 * 5 * 0.040
"""The fake reply's audio: two sentences, each five 40 ms chunks of the fake TTS."""


async def test_a_new_session_is_quiet_and_a_closed_one_is_not() -> None:
    session = make_session()
    assert session.quiet
    await session.aclose()
    assert not session.quiet


async def test_speech_then_the_reply_then_its_playout_keep_the_session_busy() -> None:
    clock = ManualClock()
    llm = FakeLLM(hold_after=1)
    session = make_session(llm=llm, clock=clock)
    speech = silence(300) + speak(QUESTION)
    half = len(speech) // 4 * 2
    await feed(session, speech[:half])
    assert not session.quiet, "the caller is speaking"
    await feed(session, speech[half:] + silence(800))
    assert not session.quiet, "the turn is being transcribed and answered"
    await llm.state.holding.wait()
    assert session.responding and not session.quiet
    llm.gate.set()
    await session.idle()
    events = drain(session)
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "completed"
    # The reply's audio went out at 0 s on the virtual clock; the caller hears it for 0.4 s.
    assert not session.quiet, "the reply is still playing at the client"
    await clock.advance(REPLY_SECONDS + PLAYOUT_MARGIN - 0.01)
    assert not session.quiet
    await clock.advance(0.02)
    assert session.quiet


async def test_a_text_only_reply_has_nothing_to_play_out() -> None:
    session = make_session(config=SessionConfig(input_format=PCM16_16K, modalities=("text",)))
    session.add_text("user", "What time is it?")
    session.create_response()
    assert not session.quiet
    await session.idle()
    assert session.quiet


async def test_without_server_vad_audio_waiting_for_a_commit_is_not_quiet() -> None:
    clock = ManualClock()
    manual = SessionConfig(input_format=PCM16_16K, turn_detection=None, modalities=("text",))
    session = make_session(config=manual, clock=clock)
    await feed(session, silence(200))
    assert not session.quiet, "the client has not committed what it sent"
    session.clear_input()
    assert session.quiet
    await feed(session, spoken_turn())
    session.commit()
    assert not session.quiet, "the committed turn is being transcribed"
    await session.idle()
    assert session.quiet


async def test_until_quiet_returns_at_the_first_quiet_moment() -> None:
    clock = ManualClock()
    session = make_session(clock=clock, tts=FakeTTS(sample_rate=24_000))
    await feed(session, spoken_turn())
    waiting = asyncio.ensure_future(session.until_quiet(poll=0.05))
    await session.idle()
    await asyncio.sleep(0)
    assert not waiting.done()
    await clock.advance(REPLY_SECONDS + PLAYOUT_MARGIN - 0.06)
    assert not waiting.done()
    await clock.advance(0.1)
    assert waiting.done() and session.quiet


@pytest.mark.parametrize("speaking_ms", [400, 1200])
async def test_speech_that_goes_on_keeps_until_quiet_waiting(speaking_ms: int) -> None:
    clock = ManualClock()
    session = make_session(clock=clock)
    waiting = asyncio.ensure_future(session.until_quiet(poll=0.05))
    await asyncio.sleep(0)
    assert waiting.done(), "quiet from the start"
    await feed(session, silence(200) + speak(QUESTION)[: 32 * speaking_ms])
    waiting = asyncio.ensure_future(session.until_quiet(poll=0.05))
    await asyncio.sleep(0)
    await clock.advance(5.0)
    assert not waiting.done() and clock.sleepers == 1, "the caller is still speaking"
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
