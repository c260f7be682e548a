"""A voice session whose STT streams: the turn's audio goes to the engine while the caller
speaks (real espeak-ng speech through the real VAD), and the endpoint commits it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from billing.usage import Segment
from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import Transcript
from providers.speech.streaming_stt import STTStream
from tests.voice.fakes import FakeSTT
from tests.voice.test_session import Usage, drain, feed, make_session, spoken_turn
from voice import events as ev
from voice.audio import PCM16_16K
from voice.config import SessionConfig


@dataclass
class FakeSTTStream(STTStream):
    engine: FakeStreamingSTT
    sample_rate: int
    name: str = "fake:stream"
    billing_source: BillingSource = BillingSource.BYOK
    audio: bytearray = field(default_factory=bytearray)
    commits: int = 0
    closed: bool = False

    @property
    def fed_seconds(self) -> float:
        return len(self.audio) / (2 * self.sample_rate)

    @property
    def partial(self) -> str:
        return "can you" if self.audio else ""

    def feed(self, pcm: bytes) -> None:
        assert not self.commits, "audio after the commit"
        self.audio += pcm

    async def commit(self) -> Transcript:
        self.commits += 1
        if self.engine.commit_error is not None:
            raise self.engine.commit_error
        return Transcript(self.engine.text, self.fed_seconds, self.name, "stream-1")

    async def aclose(self) -> None:
        self.closed = True


class FakeStreamingSTT(FakeSTT):
    """A `FakeSTT` that also opens `FakeSTTStream`s (after `open_gate`, when given)."""

    def __init__(
        self,
        *,
        opens: bool = True,
        open_gate: asyncio.Event | None = None,
        commit_error: ProviderError | None = None,
        text: str = "can you book a table for two at seven",
    ) -> None:
        super().__init__(text=text, billing_source=BillingSource.BYOK)
        self.opens = opens
        self.open_gate = open_gate
        self.commit_error = commit_error
        self.streams: list[FakeSTTStream] = []
        self.opened_for: list[str | None] = []

    async def open_stream(
        self, *, sample_rate: int, language: str | None = None, turn_id: str | None = None
    ) -> STTStream | None:
        self.opened_for.append(turn_id)
        if self.open_gate is not None:
            await self.open_gate.wait()
        if not self.opens:
            return None
        stream = FakeSTTStream(self, sample_rate)
        self.streams.append(stream)
        return stream


def input_from(pcm: bytes, start_ms: int) -> bytes:
    return pcm[start_ms * 32 :]


async def test_the_turn_is_streamed_while_spoken_and_committed_at_its_end() -> None:
    usage = Usage()
    stt = FakeStreamingSTT()
    session = make_session(stt=stt, usage=usage)
    pcm = spoken_turn()
    await feed(session, pcm)
    await session.idle()
    events = drain(session)

    started = next(e for e in events if isinstance(e, ev.SpeechStarted))
    stopped = next(e for e in events if isinstance(e, ev.SpeechStopped))
    (stream,) = stt.streams
    assert stream.commits == 1 and stream.closed
    assert stt.calls == []  # nothing transcribed after the endpoint
    # The turn from its start (pre-speech padding included), in order, with no gap or repeat,
    # through the frame that ended it.
    fed = bytes(stream.audio)
    assert fed == input_from(pcm, started.audio_start_ms)[: len(fed)]
    assert len(fed) >= (stopped.audio_end_ms - started.audio_start_ms) * 32
    completed = next(e for e in events if isinstance(e, ev.InputTranscriptCompleted))
    assert completed.transcript == "can you book a table for two at seven"
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    # One STT segment, billed by the seconds streamed, on the turn the stream was opened for.
    stt_segment = next(s for s in usage.segments if s.segment is Segment.STT)
    assert stt_segment.audio_seconds == round(len(fed) / 32_000, 3)
    assert stt_segment.billing_source is BillingSource.BYOK
    assert stt.opened_for == [stt_segment.turn_id]
    assert {s.turn_id for s in usage.segments} == {stt_segment.turn_id}


async def test_audio_fed_while_the_stream_opens_waits_and_goes_out_in_order() -> None:
    gate = asyncio.Event()
    stt = FakeStreamingSTT(open_gate=gate)
    session = make_session(stt=stt)
    pcm = spoken_turn(trailing_ms=100)  # speech starts, and no endpoint yet
    await feed(session, pcm)
    started = next(e for e in drain(session) if isinstance(e, ev.SpeechStarted))
    assert stt.streams == []
    await feed(session, b"\x00\x00" * 16_000)  # the endpoint, still opening
    gate.set()
    await session.idle()
    (stream,) = stt.streams
    fed = bytes(stream.audio)
    padded = pcm + b"\x00\x00" * 16_000
    assert fed == input_from(padded, started.audio_start_ms)[: len(fed)]
    assert len(fed) > len(pcm) - started.audio_start_ms * 32


async def test_an_engine_that_does_not_stream_this_turn_transcribes_it_at_its_end() -> None:
    stt = FakeStreamingSTT(opens=False)
    session = make_session(stt=stt)
    await feed(session, spoken_turn())
    await session.idle()
    events = drain(session)
    assert len(stt.opened_for) == 1 and len(stt.calls) == 1
    completed = next(e for e in events if isinstance(e, ev.InputTranscriptCompleted))
    assert completed.transcript == "can you book a table for two at seven"


async def test_a_failed_commit_fails_the_transcript_and_the_session_keeps_listening() -> None:
    error = ProviderError(ErrorClass.SERVER_ERROR, "boom", provider="fake:stream")
    stt = FakeStreamingSTT(commit_error=error)
    session = make_session(stt=stt)
    await feed(session, spoken_turn())
    await session.idle()
    events = drain(session)
    failed = next(e for e in events if isinstance(e, ev.InputTranscriptFailed))
    assert failed.code == "stt_unavailable"
    assert not any(isinstance(e, ev.ResponseCreated) for e in events)
    stt.commit_error = None
    await feed(session, spoken_turn())
    await session.idle()
    assert any(isinstance(e, ev.ResponseDone) for e in drain(session))
    assert [s.commits for s in stt.streams] == [1, 1]


async def test_clearing_the_buffer_mid_speech_drops_the_stream_uncommitted() -> None:
    stt = FakeStreamingSTT()
    session = make_session(stt=stt)
    await feed(session, spoken_turn(trailing_ms=100))
    session.clear_input()
    await session.idle()
    (stream,) = stt.streams
    assert stream.closed and stream.commits == 0


async def test_closing_the_session_closes_an_open_stream() -> None:
    stt = FakeStreamingSTT()
    session = make_session(stt=stt)
    await feed(session, spoken_turn(trailing_ms=100))
    await session.idle()  # the stream is open (the turn goes on: no endpoint yet)
    await session.aclose()
    (stream,) = stt.streams
    assert stream.closed and stream.commits == 0


async def test_manual_turns_are_not_streamed() -> None:
    stt = FakeStreamingSTT()
    session = make_session(stt=stt, config=SessionConfig(input_format=PCM16_16K, turn_detection=None))
    await feed(session, spoken_turn())
    session.commit()
    await session.idle()
    assert stt.opened_for == [] and len(stt.calls) == 1


async def test_a_session_closed_as_speech_starts_leaves_nothing_open() -> None:
    stt = FakeStreamingSTT()
    session = make_session(stt=stt)
    await feed(session, spoken_turn(trailing_ms=100))
    await session.aclose()  # the stream's opening never ran
    assert stt.opened_for == [] and stt.streams == []
