"""Partial transcripts in a session: decode at pauses, end the turn by what was said, reuse.

Real espeak-ng speech through the real VAD and turn detector; the STT is a fake that can
speculate (`prefetch`) and says what it was asked. Between frames the test waits for the
session's tasks (`idle`), so every partial is decoded before the next 20 ms of audio: the
order is that of an engine infinitely fast, and every figure is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeSTT, FakeTTS
from tests.voice.speech import silence, speak
from voice import events as ev
from voice.audio import PCM16_16K
from voice.clock import ManualClock
from voice.config import SessionConfig
from voice.endpointing import TurnDetectionConfig
from voice.session import VoiceSession
from voice.turn import SessionContext

FIRST = "Can you turn off the lights in the kitchen"
SECOND = "What time does the pharmacy close on Sunday"


@dataclass
class Prefetch:
    pcm: bytes
    previous: str | None


class SpeculatingSTT(FakeSTT):
    """Answers a prefetch with `partial` (or `after` when earlier text is committed)."""

    def __init__(self, partial: str | None, after: str | None = None) -> None:
        super().__init__(text="hello world")
        self.partial, self.after = partial, after
        self.prefetches: list[Prefetch] = []
        self.transcribed: list[bytes] = []

    async def prefetch(
        self, pcm16_16k: bytes, *, language: str | None = None, previous: str | None = None
    ) -> str | None:
        self.prefetches.append(Prefetch(pcm16_16k, previous))
        return self.after if previous else self.partial

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> object:  # type: ignore[override]
        self.transcribed.append(pcm16_16k)
        return await super()._transcribe(pcm16_16k, language)


def session_with(stt: FakeSTT, **detection: object) -> VoiceSession:
    config = SessionConfig(input_format=PCM16_16K, turn_detection=replace(TurnDetectionConfig(), **detection))
    context = SessionContext(org_id="org_1", session_id="sess_1")
    return VoiceSession(
        context, stt=stt, tts=FakeTTS(sample_rate=24_000), llm=FakeLLM(), config=config, clock=ManualClock()
    )


async def run(session: VoiceSession, pcm: bytes) -> list[ev.SessionEvent]:
    for offset in range(0, len(pcm), 640):
        session.append_audio(pcm[offset : offset + 640])
        await session.idle()
    events = []
    while (event := session.outbox.get_nowait()) is not None:
        events.append(event)
    return events


def stops(events: list[ev.SessionEvent]) -> list[int]:
    return [e.audio_end_ms for e in events if isinstance(e, ev.SpeechStopped)]


def transcripts(events: list[ev.SessionEvent]) -> list[str]:
    return [e.transcript for e in events if isinstance(e, ev.InputTranscriptCompleted)]


TURN = silence(300) + speak(FIRST) + silence(1500)


async def test_a_complete_sentence_ends_the_turn_sooner_and_its_decode_is_reused() -> None:
    fixed = await run(session_with(FakeSTT(), partial_transcripts=False), TURN)
    stt = SpeculatingSTT("Can you turn off the lights in the kitchen?")
    events = await run(session_with(stt), TURN)
    (fixed_stop,) = stops(fixed)
    (stop,) = stops(events)
    assert fixed_stop - stop == 500 - 300  # the sentence's silence instead of the fixed one
    assert stt.prefetches and stt.transcribed == [stt.prefetches[-1].pcm]  # no second decode
    assert transcripts(events) == ["hello world"]


async def test_a_trailing_and_waits_longer() -> None:
    fixed = await run(session_with(FakeSTT(), partial_transcripts=False), TURN)
    events = await run(session_with(SpeculatingSTT("Turn off the lights and")), TURN)
    assert stops(events)[0] - stops(fixed)[0] == 1000 - 500


async def test_an_engine_that_cannot_speculate_changes_nothing() -> None:
    fixed = await run(session_with(FakeSTT(), partial_transcripts=False), TURN)
    stt = SpeculatingSTT(None)
    events = await run(session_with(stt), TURN)
    assert stops(events) == stops(fixed)
    assert len(stt.transcribed) == 1 and len(stt.transcribed[0]) > len(stt.prefetches[-1].pcm) // 2


async def test_a_committed_sentence_is_kept_and_only_the_tail_is_decoded_again() -> None:
    # A short gap between the sentences (with espeak-ng's own trailing quiet, under the
    # 700 ms this session gives a sentence): a pause, then speech again, so the first
    # sentence is committed and the turn goes on.
    audio = silence(300) + speak(FIRST) + silence(200) + speak(SECOND) + silence(1500)
    stt = SpeculatingSTT("Can you turn off the lights in the kitchen?", after="What time does it close?")
    events = await run(session_with(stt, silence_duration_ms=800, sentence_silence_ms=700), audio)
    assert len(stops(events)) == 1
    last = stt.prefetches[-1]
    assert last.previous is not None and last.previous.endswith("Can you turn off the lights in the kitchen?")
    assert len(last.pcm) < len(speak(SECOND)) + 16_000  # the tail, not the whole turn
    assert stt.transcribed == [last.pcm]
    (text,) = transcripts(events)
    assert text.startswith("Can you turn off the lights in the kitchen?") and text.endswith("hello world")


async def test_speech_after_the_pause_means_the_whole_turn_is_transcribed() -> None:
    # Partials that never complete a sentence: nothing is committed, and at the end the turn
    # is decoded from its start (the last pause's bytes, which cover it all).
    audio = silence(300) + speak(FIRST) + silence(200) + speak(SECOND) + silence(800)
    stt = SpeculatingSTT("can you turn off")
    events = await run(session_with(stt, silence_duration_ms=800), audio)
    assert all(p.previous is None for p in stt.prefetches)
    assert len(stt.transcribed) == 1
    assert len(stt.transcribed[0]) > len(speak(FIRST)) + len(speak(SECOND)) - 16_000
    assert transcripts(events) == ["hello world"]
