"""The reply started on a pause's complete sentence (`voice.speculation`) in a session.

Real espeak-ng speech through the real VAD and turn detector, as `test_partials`: between
frames the test waits for the session's tasks, so a speculated reply has run to its end (the
LLM's whole stream, the first chunk's audio) before the next 20 ms of audio arrives. What the
client would have seen is the outbox, read after every frame.
"""

from __future__ import annotations

from dataclasses import replace

from billing.usage import Segment, SegmentStatus
from providers.types import TextPart
from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeTTS
from tests.voice.speech import silence, speak
from tests.voice.test_partials import FIRST, SECOND, SpeculatingSTT
from tests.voice.test_session import Usage
from voice import events as ev
from voice.audio import PCM16_16K
from voice.clock import ManualClock
from voice.config import SessionConfig
from voice.endpointing import TurnDetectionConfig
from voice.session import VoiceSession
from voice.turn import SessionContext

SENTENCE = "Can you turn off the lights in the kitchen?"


class Session:
    def __init__(self, stt: SpeculatingSTT, **detection: object) -> None:
        self.stt = stt
        self.llm = FakeLLM()
        self.tts = FakeTTS(sample_rate=24_000)
        self.usage = Usage()
        turn_detection = replace(TurnDetectionConfig(), **detection)
        self.session = VoiceSession(
            SessionContext(org_id="org_1", session_id="sess_1"),
            stt=stt,
            tts=self.tts,
            llm=self.llm,
            config=SessionConfig(input_format=PCM16_16K, turn_detection=turn_detection),
            clock=ManualClock(),
            usage=self.usage,
        )
        self.seen: list[tuple[int, ev.SessionEvent]] = []
        """Every event the client got, with the input position (ms) it was sent at."""

    async def hear(self, pcm: bytes) -> None:
        session = self.session
        for offset in range(0, len(pcm), 640):
            session.append_audio(pcm[offset : offset + 640])
            await session.idle()
            while (event := session.outbox.get_nowait()) is not None:
                self.seen.append((offset // 32, event))

    def of(self, kind: type[ev.SessionEvent]) -> list[ev.SessionEvent]:
        return [event for _, event in self.seen if isinstance(event, kind)]

    def user_texts(self) -> list[list[str]]:
        """The user messages of each LLM request."""
        return [
            [
                part.text
                for m in r.messages
                if m.role == "user"
                for part in m.content
                if isinstance(part, TextPart)
            ]
            for r in self.llm.state.requests
        ]


def echoing(partial: str, after: str | None = None) -> SpeculatingSTT:
    """An STT whose final transcript is what its last prefetch said (as Whisper's kept decode)."""
    stt = SpeculatingSTT(partial, after=after)
    stt.text = after or partial
    return stt


async def test_when_the_final_transcript_is_the_partial_the_speculated_reply_is_the_one_sent() -> None:
    s = Session(echoing(SENTENCE), silence_duration_ms=800, sentence_silence_ms=700)
    await s.hear(silence(300) + speak(FIRST) + silence(300))
    # In the endpointing silence: the reply and its first chunk's audio are ready, unsent.
    assert not s.of(ev.SpeechStopped) and len(s.llm.state.requests) == 1
    assert [c.text for c in s.tts.state.calls] == ["Sure thing."]
    assert not s.of(ev.ResponseCreated) and not s.of(ev.AudioDelta)
    await s.hear(silence(1200))
    assert s.of(ev.InputTranscriptCompleted)[0].transcript == SENTENCE  # type: ignore[attr-defined]
    assert len(s.llm.state.requests) == 1  # one LLM call: the speculated one
    assert s.user_texts() == [[SENTENCE]]
    # The first chunk spoken ahead was the one sent: each chunk was synthesized once.
    assert [c.text for c in s.tts.state.calls] == ["Sure thing.", "Your table is booked for two."]
    (done,) = s.of(ev.ResponseDone)
    assert done.status == "completed"  # type: ignore[attr-defined]
    audio = b"".join(e.audio for e in s.of(ev.AudioDelta))  # type: ignore[attr-defined]
    assert audio  # and it reached the client
    (stop_at,) = [at for at, e in s.seen if isinstance(e, ev.SpeechStopped)]
    assert all(at >= stop_at for at, e in s.seen if isinstance(e, ev.ResponseCreated | ev.AudioDelta))
    llm = [u for u in s.usage.segments if u.segment == Segment.LLM]
    assert [u.status for u in llm] == [SegmentStatus.OK]  # billed once, as the turn's


async def test_when_the_final_transcript_differs_the_llm_is_asked_again_on_it() -> None:
    stt = SpeculatingSTT(SENTENCE)  # its final transcript is "hello world"
    s = Session(stt)
    await s.hear(silence(300) + speak(FIRST) + silence(1500))
    assert s.user_texts() == [[SENTENCE], ["hello world"]]
    assert len(s.of(ev.ResponseCreated)) == 1
    (done,) = s.of(ev.ResponseDone)
    assert done.status == "completed"  # type: ignore[attr-defined]
    assert all(turn == s.llm.turn_ids[0] for turn in s.llm.turn_ids)  # one turn, billed as such
    statuses = sorted(u.status for u in s.usage.segments if u.segment == Segment.LLM)
    assert statuses == sorted([SegmentStatus.CANCELLED, SegmentStatus.OK])  # the discarded one, as ran


async def test_speech_after_the_pause_cancels_the_speculated_reply_and_nothing_reaches_the_client() -> None:
    # The first sentence's pause is decoded and complete, but this session waits 700 ms
    # after a sentence: the caller goes on before that, so the turn goes on too.
    stt = echoing(SENTENCE, after="What time does it close?")
    s = Session(stt, silence_duration_ms=800, sentence_silence_ms=700)
    await s.hear(silence(300) + speak(FIRST) + silence(300))
    assert len(s.llm.state.requests) == 1  # the reply to the first sentence, started ahead
    assert not s.of(ev.ResponseCreated) and not s.of(ev.AudioDelta) and not s.of(ev.SpeechStopped)
    await s.hear(speak(SECOND) + silence(1500))
    assert len(s.of(ev.SpeechStopped)) == 1  # one turn
    (created,) = s.of(ev.ResponseCreated)
    (done,) = s.of(ev.ResponseDone)
    assert done.status == "completed"  # type: ignore[attr-defined]
    # The first speculation was dropped; the second pause's (the whole turn) was sent.
    assert s.user_texts() == [[SENTENCE], [f"{SENTENCE} What time does it close?"]]
    (cancelled, *_) = [u for u in s.usage.segments if u.status == SegmentStatus.CANCELLED]
    assert cancelled.segment == Segment.LLM and cancelled.turn_id == s.llm.turn_ids[0]
    assert s.llm.turn_ids[0] != s.llm.turn_ids[-1]  # not charged to the turn that was answered


async def test_a_reply_is_not_speculated_when_turned_off_or_when_the_partial_is_not_a_sentence() -> None:
    off = Session(echoing(SENTENCE), speculative_reply=False)
    await off.hear(silence(300) + speak(FIRST) + silence(1500))
    trailing = Session(echoing("Can you turn off the lights and"))
    await trailing.hear(silence(300) + speak(FIRST) + silence(1500))
    for s in (off, trailing):
        assert len(s.llm.state.requests) == 1 and len(s.of(ev.ResponseDone)) == 1
        assert not [u for u in s.usage.segments if u.status == SegmentStatus.CANCELLED]
