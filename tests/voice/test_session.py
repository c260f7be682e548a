"""The voice session with fake engines: turns, barge-in, manual mode, text items, history.

Audio is real synthetic speech (espeak-ng) run through the real VAD and turn detector, so
turns start and stop where a caller's would; STT, LLM and TTS are in-memory fakes, so a long
conversation runs in milliseconds and every ordering is deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from billing.usage import Segment, SegmentStatus, UsageSegment
from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeSTT, FakeTTS
from tests.voice.speech import silence, speak
from voice import events as ev
from voice.audio import PCM16_16K, ULAW_8K, encode_from_pcm16, resample
from voice.clock import ManualClock
from voice.config import SessionConfig, SessionLimits
from voice.errors import ClientError
from voice.session import VoiceSession
from voice.turn import SessionContext

QUESTION = "Can you book a table for two at seven?"


class Usage:
    def __init__(self) -> None:
        self.segments: list[UsageSegment] = []

    def record(self, segment: UsageSegment) -> None:
        self.segments.append(segment)


def frames(pcm: bytes, bytes_per_frame: int = 640) -> Iterator[bytes]:
    for offset in range(0, len(pcm), bytes_per_frame):
        yield pcm[offset : offset + bytes_per_frame]


def spoken_turn(text: str = QUESTION, trailing_ms: int = 800) -> bytes:
    """Speech with silence around it, PCM16 16 kHz."""
    return silence(300) + speak(text) + silence(trailing_ms)


def make_session(
    *,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    stt: FakeSTT | None = None,
    config: SessionConfig | None = None,
    usage: Usage | None = None,
    limits: SessionLimits | None = None,
    clock: ManualClock | None = None,
) -> VoiceSession:
    return VoiceSession(
        SessionContext(org_id="org_1", session_id="sess_1", api_key_id="key_1", model="agent:concierge"),
        stt=stt or FakeSTT(text="can you book a table for two at seven"),
        tts=tts or FakeTTS(sample_rate=24_000),
        llm=llm or FakeLLM(),
        config=config or SessionConfig(input_format=PCM16_16K),
        limits=limits,
        usage=usage,
        clock=clock or ManualClock(),
    )


def drain(session: VoiceSession) -> list[ev.SessionEvent]:
    out: list[ev.SessionEvent] = []
    while (event := session.outbox.get_nowait()) is not None:
        out.append(event)
    return out


def kinds(events: list[ev.SessionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


async def feed(session: VoiceSession, pcm: bytes) -> None:
    for frame in frames(pcm):
        session.append_audio(frame)


async def test_a_spoken_turn_runs_stt_llm_and_tts_in_order() -> None:
    usage = Usage()
    session = make_session(usage=usage)
    await feed(session, spoken_turn())
    await session.idle()
    events = drain(session)

    names = kinds(events)
    assert names[:5] == [
        "SpeechStarted",
        "SpeechStopped",
        "InputCommitted",
        "ItemCreated",
        "InputTranscriptCompleted",
    ]
    assert names[5:8] == ["ResponseCreated", "OutputItemAdded", "ItemCreated"]
    assert names[-2:] == ["OutputItemDone", "ResponseDone"]
    started, stopped = events[0], events[1]
    assert isinstance(started, ev.SpeechStarted) and isinstance(stopped, ev.SpeechStopped)
    assert started.item_id == stopped.item_id
    # The speech begins after 300 ms of silence; the padding reaches back before it.
    assert 0 <= started.audio_start_ms < 300 < stopped.audio_end_ms
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    assert (done.input_tokens, done.output_tokens) == (12, 9)
    assert set(done.metadata["ttfb_ms"]) == {"stt", "llm", "tts"}

    transcript = "".join(e.text for e in events if isinstance(e, ev.TranscriptDelta))
    assert transcript == "Sure thing. Your table is booked for two."
    audio = b"".join(e.audio for e in events if isinstance(e, ev.AudioDelta))
    assert audio == FakeTTS().audio() * 2  # two chunks, 24 kHz in and out: no resampling
    # Each chunk's transcript goes out just before its first audio.
    first_audio = names.index("AudioDelta")
    assert names[first_audio - 1] == "TranscriptDelta"

    turn_ids = {s.turn_id for s in usage.segments}
    assert len(turn_ids) == 1 and None not in turn_ids
    by_kind = {s.segment: s for s in usage.segments}
    assert set(by_kind) == {Segment.STT, Segment.LLM, Segment.TTS}
    assert by_kind[Segment.STT].audio_seconds > 1.0
    assert by_kind[Segment.LLM].billing_source is BillingSource.BYOK
    assert by_kind[Segment.LLM].tokens.output_tokens == 9
    assert by_kind[Segment.TTS].characters == len("Sure thing.") + len("Your table is booked for two.")


async def test_the_llm_sees_the_transcript_and_the_history() -> None:
    llm = FakeLLM()
    session = make_session(llm=llm, config=SessionConfig(input_format=PCM16_16K, instructions="Be brief."))
    await feed(session, spoken_turn())
    await session.idle()
    await feed(session, spoken_turn("And one more thing please."))
    await session.idle()
    second = llm.state.requests[1]
    roles = [m.role.value for m in second.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert second.messages[0].text == "Be brief."
    assert second.messages[2].text == "Sure thing. Your table is booked for two."
    assert second.model == "agent:concierge"


async def test_barge_in_cancels_the_response_and_no_delta_follows() -> None:
    llm = FakeLLM(hold_after=1)  # speaks the first sentence, then waits for more text
    tts = FakeTTS(sample_rate=24_000, chunks=50, chunk_ms=20)
    session = make_session(llm=llm, tts=tts)
    await feed(session, spoken_turn())
    await llm.state.started.wait()
    # Let the first sentence's audio flow: wait for the first delta in the outbox.
    seen: list[ev.SessionEvent] = []
    while not any(isinstance(e, ev.AudioDelta) for e in seen):
        seen.append(await session.outbox.get())
    response_id = next(e.response_id for e in seen if isinstance(e, ev.ResponseCreated))

    await feed(session, speak("Wait, stop."))  # the caller talks over the reply
    assert not session.responding
    llm.gate.set()
    await session.idle()
    seen += drain(session)

    barge = next(i for i, e in enumerate(seen) if isinstance(e, ev.SpeechStarted) and i > 5)
    after = seen[barge:]
    assert not [e for e in after if isinstance(e, ev.CancellableOutput) and e.response_id == response_id]
    done = next(e for e in after if isinstance(e, ev.ResponseDone))
    assert (done.response_id, done.status, done.reason) == (response_id, "cancelled", "turn_detected")
    assert tts.state.closed
    assert llm.state.cancelled == 1
    assert session.outbox.dropped > 0 or tts.state.chunks_yielded < 50


async def test_barge_in_is_ignored_when_interrupt_response_is_off() -> None:
    llm = FakeLLM(hold_after=1)
    config = SessionConfig(input_format=PCM16_16K, interrupt_response=False)
    session = make_session(llm=llm, config=config)
    await feed(session, spoken_turn())
    await llm.state.started.wait()
    await feed(session, speak("Wait."))
    assert session.responding
    llm.gate.set()
    await session.idle()
    statuses = [e.status for e in drain(session) if isinstance(e, ev.ResponseDone)]
    assert statuses[0] == "completed"


async def test_client_cancel_reports_client_cancelled() -> None:
    llm = FakeLLM(hold_after=1)
    session = make_session(llm=llm, config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    session.add_text("user", "hello")
    response_id = session.create_response()
    await llm.state.started.wait()
    assert not session.cancel_response("resp_other")
    assert session.cancel_response(response_id)
    await session.idle()
    done = [e for e in drain(session) if isinstance(e, ev.ResponseDone)]
    assert [(d.status, d.reason) for d in done] == [("cancelled", "client_cancelled")]


async def test_manual_mode_commits_then_responds_with_the_transcript() -> None:
    stt = FakeSTT(text="what time is it", gate=asyncio.Event())
    llm = FakeLLM()
    session = make_session(
        stt=stt, llm=llm, config=SessionConfig(input_format=PCM16_16K, turn_detection=None)
    )
    await feed(session, spoken_turn())
    assert not any(isinstance(e, ev.SpeechStarted) for e in drain(session))
    item_id = session.commit()
    session.create_response()  # before the transcript exists
    assert stt.gate is not None
    stt.gate.set()
    await session.idle()
    events = drain(session)
    assert isinstance(events[0], ev.InputCommitted) and events[0].item_id == item_id
    assert llm.state.requests[0].messages[-1].text == "what time is it"
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "completed"


async def test_manual_commit_of_an_empty_buffer_is_a_client_error() -> None:
    session = make_session(config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    with pytest.raises(ClientError) as caught:
        session.commit()
    assert caught.value.code == "input_audio_buffer_commit_empty"
    session.append_audio(silence(500))
    session.clear_input()
    with pytest.raises(ClientError):
        session.commit()


async def test_text_items_and_a_text_only_response() -> None:
    llm = FakeLLM(("Four.",))
    session = make_session(
        llm=llm, config=SessionConfig(input_format=PCM16_16K, turn_detection=None, modalities=("text",))
    )
    session.add_text("user", "What is two plus two?")
    session.create_response()
    await session.idle()
    events = drain(session)
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "Four."
    assert not any(isinstance(e, ev.AudioDelta) for e in events)
    assert [i.text for i in session.conversation.items] == ["What is two plus two?", "Four."]


async def test_a_second_response_while_one_runs_is_refused() -> None:
    llm = FakeLLM(hold_after=0)
    session = make_session(llm=llm, config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    session.create_response()
    with pytest.raises(ClientError) as caught:
        session.create_response()
    assert caught.value.code == "conversation_already_has_active_response"
    await session.aclose()


async def test_truncate_keeps_only_what_the_caller_heard() -> None:
    tts = FakeTTS(sample_rate=24_000, chunks=5, chunk_ms=100)  # 500 ms per chunk
    session = make_session(tts=tts, config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    session.add_text("user", "book it")
    session.create_response()
    await session.idle()
    item = session.conversation.items[-1]
    assert item.text == "Sure thing. Your table is booked for two."
    session.truncate(item.id, 0, 600)  # all of the first chunk, a fifth of the second
    assert session.conversation.get(item.id).text == "Sure thing. Your"
    with pytest.raises(ClientError):
        session.truncate(item.id, 0, 60_000)
    with pytest.raises(ClientError):
        session.truncate("item_missing", 0, 10)
    assert isinstance(drain(session)[-1], ev.ItemTruncated)


async def test_truncate_counts_on_the_played_timeline_when_the_output_is_resampled() -> None:
    """µ-law 8 kHz from a 24 kHz TTS: the resampler's held-back tail is not a shift in time."""
    tts = FakeTTS(sample_rate=24_000, chunks=5, chunk_ms=100)  # 500 ms per chunk
    config = SessionConfig(input_format=PCM16_16K, output_format=ULAW_8K, turn_detection=None)
    session = make_session(tts=tts, config=config)
    session.add_text("user", "book it")
    session.create_response()
    await session.idle()
    item = session.conversation.items[-1]
    played = sum(len(e.audio) for e in drain(session) if isinstance(e, ev.AudioDelta))
    assert played == 2 * 500 * 8
    session.truncate(item.id, 0, 500)
    assert session.conversation.get(item.id).text == "Sure thing."


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"\x01\x02\x03", "invalid_audio_format"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "invalid_audio_format")],
)
async def test_bad_audio_is_a_client_error_and_changes_nothing(data: bytes, code: str) -> None:
    session = make_session(config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    with pytest.raises(ClientError) as caught:
        session.append_audio(data)
    assert caught.value.code == code
    session.append_audio(silence(200))
    assert session.commit()


async def test_manual_buffer_limit() -> None:
    session = make_session(
        config=SessionConfig(input_format=PCM16_16K, turn_detection=None),
        limits=SessionLimits(max_buffer_seconds=1.0),
    )
    session.append_audio(silence(900))
    with pytest.raises(ClientError) as caught:
        session.append_audio(silence(200))
    assert caught.value.code == "input_audio_buffer_full"


async def test_tts_failure_fails_the_response_not_the_session() -> None:
    error = ProviderError(ErrorClass.QUOTA_EXHAUSTED, "quota", provider="elevenlabs")
    session = make_session(
        tts=FakeTTS(error=error), config=SessionConfig(input_format=PCM16_16K, turn_detection=None)
    )
    session.add_text("user", "hi")
    session.create_response()
    await session.idle()
    events = drain(session)
    errors = [e for e in events if isinstance(e, ev.ErrorEvent)]
    assert [(e.type, e.code) for e in errors] == [("server_error", "tts_unavailable")]
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "failed"
    session.update(SessionConfig(input_format=PCM16_16K, turn_detection=None, modalities=("text",)))
    session.create_response()
    await session.idle()
    assert [e.status for e in drain(session) if isinstance(e, ev.ResponseDone)] == ["completed"]


async def test_llm_failure_is_reported_and_billed_as_failed() -> None:
    usage = Usage()
    llm = FakeLLM(error=ProviderError(ErrorClass.SERVER_ERROR, "boom", provider="openai"))
    session = make_session(
        llm=llm, usage=usage, config=SessionConfig(input_format=PCM16_16K, turn_detection=None)
    )
    session.create_response()
    await session.idle()
    events = drain(session)
    assert any(isinstance(e, ev.ErrorEvent) and e.code == "llm_unavailable" for e in events)
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "failed"
    assert not [s for s in usage.segments if s.status is SegmentStatus.OK]


async def test_stt_failure_reports_the_item_and_keeps_listening() -> None:
    stt = FakeSTT(error=ProviderError(ErrorClass.SERVER_ERROR, "down", provider="elevenlabs"))
    session = make_session(stt=stt)
    await feed(session, spoken_turn())
    await session.idle()
    events = drain(session)
    assert any(isinstance(e, ev.InputTranscriptFailed) for e in events)
    assert not any(isinstance(e, ev.ResponseCreated) for e in events)


async def test_mulaw_input_at_8k_detects_turns() -> None:
    session = make_session(config=SessionConfig(input_format=ULAW_8K))
    pcm8k = resample(spoken_turn(), 16_000, 8_000)
    for frame in frames(encode_from_pcm16(pcm8k, ULAW_8K), 160):
        session.append_audio(frame)
    await session.idle()
    names = kinds(drain(session))
    assert names[:2] == ["SpeechStarted", "SpeechStopped"]
    assert names[-1] == "ResponseDone"


def fired_timers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The callbacks of the running loop's timers that fire from now on: every wait on real
    time (`asyncio.sleep(d > 0)`, `wait_for`, `asyncio.timeout`) that actually elapsed."""
    loop = asyncio.get_running_loop()
    fired: list[object] = []
    schedule = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        def run(*inner: Any) -> None:
            fired.append(callback)
            callback(*inner)

        return schedule(when, run, *args, context=context)

    monkeypatch.setattr(loop, "call_at", call_at)
    return fired


async def test_a_thirty_second_conversation_never_waits_on_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Why it runs in milliseconds, shown without a stopwatch: turns are timed by counting
    # samples, and the session's clock is virtual and never advanced here, so no real-time
    # timer may fire and nothing may be left sleeping on the clock.
    usage = Usage()
    clock = ManualClock()
    session = make_session(usage=usage, clock=clock)
    turn = spoken_turn("Please book a table.", trailing_ms=1200)
    assert len(turn) // 32 >= 2500
    fired = fired_timers(monkeypatch)
    audio_ms = 0
    while audio_ms < 30_000:
        await feed(session, turn)
        await session.idle()
        audio_ms += len(turn) // 32
    done = [e for e in drain(session) if isinstance(e, ev.ResponseDone)]
    assert len(done) == len({s.turn_id for s in usage.segments}) >= 10
    assert all(d.status == "completed" for d in done)
    assert fired == []
    assert clock.sleepers == 0


async def test_a_turn_still_transcribing_when_the_caller_speaks_again_is_answered_with_the_next() -> None:
    gate = asyncio.Event()
    stt = FakeSTT(text="book a table", gate=gate)
    llm = FakeLLM()
    session = make_session(stt=stt, llm=llm)
    await feed(session, spoken_turn())
    await feed(session, silence(300) + speak("For two people."))  # speaking again, turn not over
    gate.set()
    await session.idle()
    assert not llm.state.requests  # nobody answered while the caller was talking
    await feed(session, silence(800))
    await session.idle()
    assert len(llm.state.requests) == 1
    assert [m.text for m in llm.state.requests[0].messages] == ["book a table", "book a table"]


async def test_a_tts_failure_stops_a_stalled_llm_at_once() -> None:
    llm = FakeLLM(hold_after=2)  # writes the first sentence, then waits (the gate is never set)
    error = ProviderError(ErrorClass.SERVER_ERROR, "down", provider="tts")
    session = make_session(
        llm=llm, tts=FakeTTS(error=error), config=SessionConfig(input_format=PCM16_16K, turn_detection=None)
    )
    session.add_text("user", "hi")
    session.create_response()
    await session.idle()  # returns although the LLM would wait forever
    events = drain(session)
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "failed"
    assert events[-1].error_code == "tts_unavailable"
    assert llm.state.cancelled == 1 and llm.state.closed == 1
    assert not session.responding
