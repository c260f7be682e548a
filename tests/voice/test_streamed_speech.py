"""A reply spoken over one streamed TTS connection (`voice.streamed_speech`), with fakes.

The fake stream buffers what it is sent and speaks each flushed (or final) buffer as two pieces
of tone of 40 ms, each carrying half of its words as its alignment, as ElevenLabs'
`stream-input` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from billing.usage import Segment
from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.audio_bound import audio_bound_bytes
from providers.speech.elevenlabs_ws_wire import wire_text
from providers.speech.streaming import SpokenAudio, StreamingTTS, TTSStream
from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeTTS, tone
from tests.voice.speech import speak
from tests.voice.test_session import Usage, drain, feed, make_session, spoken_turn
from voice import events as ev
from voice.audio import PCM16_16K
from voice.config import SessionConfig


class FakeStream(TTSStream):
    """Buffers the text it is sent and generates it on a flush or at the end (a provider whose
    schedule never fills on these short replies)."""

    def __init__(
        self,
        *,
        error: ProviderError | None = None,
        fail_after: int = 0,
        hold_after: int | None = None,
        piece_seconds: float = 0.04,
    ):
        self.piece_seconds = piece_seconds
        self.name = "fake:stream"
        self.billing_source = BillingSource.BYOK
        self.sample_rate = 24_000
        self.sent: list[tuple[str, bool]] = []
        self.ended = False
        self.closed = False
        self.error = error
        self.fail_after = fail_after
        self.hold_after = hold_after
        self._buffer = ""
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._sent_more = asyncio.Event()

    async def wait_for_text(self, fragment: str) -> None:
        while fragment not in self.text:
            self._sent_more.clear()
            await self._sent_more.wait()

    async def send(self, text: str, *, flush: bool = False) -> bool:
        text = wire_text(text)
        self.sent.append((text, flush))
        self._sent_more.set()
        self.characters += len(text)
        self._buffer += text
        if flush and self._buffer:
            self._inbox.put_nowait(self._buffer)
            self._buffer = ""
            return True
        return False

    async def end(self) -> None:
        self.ended = True
        if self._buffer:
            self._inbox.put_nowait(self._buffer)
        self._inbox.put_nowait(None)

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.sent)

    async def audio(self) -> AsyncIterator[SpokenAudio]:
        pieces = 0
        while (text := await self._inbox.get()) is not None:
            half = text.rfind(" ", 0, len(text) // 2 + 1) + 1 or len(text) // 2  # at a word
            for part in (text[:half], text[half:]):
                if self.error is not None and pieces == self.fail_after:
                    raise self.error
                if self.hold_after is not None and pieces == self.hold_after:
                    await asyncio.Event().wait()
                pieces += 1
                yield SpokenAudio(tone(24_000, self.piece_seconds), part)
                await asyncio.sleep(0)

    async def aclose(self) -> None:
        self.closed = True


class StreamingFakeTTS(FakeTTS):
    """A per-sentence fake that also opens `stream` (or declines with None)."""

    def __init__(self, stream: FakeStream | None, **kwargs: object) -> None:
        super().__init__(sample_rate=24_000, **kwargs)  # type: ignore[arg-type]
        self.stream = stream
        self.opened = 0

    async def open_stream(self, *, voice: str | None = None, turn_id: str | None = None) -> TTSStream | None:
        self.opened += 1
        return self.stream


def text_session(tts: FakeTTS, llm: FakeLLM | None = None, usage: Usage | None = None):  # type: ignore[no-untyped-def]
    session = make_session(
        tts=tts, llm=llm, usage=usage, config=SessionConfig(input_format=PCM16_16K, turn_detection=None)
    )
    session.add_text("user", "hi")
    session.create_response()
    return session


def test_the_fake_is_a_streaming_tts() -> None:
    assert isinstance(StreamingFakeTTS(None), StreamingTTS)


async def test_a_reply_goes_over_one_stream_and_the_transcript_follows_the_alignment() -> None:
    stream = FakeStream()
    tts = StreamingFakeTTS(stream)
    usage = Usage()
    session = text_session(tts, usage=usage)
    await session.idle()
    events = drain(session)
    assert stream.text == "Sure thing. Your table is booked for two. "
    # Each sentence end is flushed while the listener has little audio ahead; words in between are not.
    assert [text for text, flush in stream.sent if flush] == ["Sure thing. ", "two. "]
    assert stream.ended and stream.closed
    assert tts.state.calls == []  # nothing was spoken per sentence
    transcript = "".join(e.text for e in events if isinstance(e, ev.TranscriptDelta))
    assert transcript == "Sure thing. Your table is booked for two."
    names = [type(e).__name__ for e in events]
    assert names[names.index("AudioDelta") - 1] == "TranscriptDelta"
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    assert done.metadata["tts_provider"] == "fake:stream"
    assert done.metadata["ttfb_ms"]["tts"] is not None
    item = next(e.item for e in events if isinstance(e, ev.OutputItemDone))
    assert item.text == transcript
    tts_segments = [s for s in usage.segments if s.segment is Segment.TTS]
    assert [s.billing_source for s in tts_segments] == [BillingSource.BYOK]


async def test_barge_in_closes_the_stream() -> None:
    stream = FakeStream(hold_after=1)
    llm = FakeLLM(hold_after=1)
    tts = StreamingFakeTTS(stream)
    session = make_session(llm=llm, tts=tts)
    await feed(session, spoken_turn())
    seen: list[ev.SessionEvent] = []
    while not any(isinstance(e, ev.AudioDelta) for e in seen):
        seen.append(await session.outbox.get())
    await feed(session, speak("Wait, stop."))
    assert not session.responding
    llm.gate.set()
    await session.idle()
    seen += drain(session)
    done = next(e for e in seen if isinstance(e, ev.ResponseDone))
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    assert stream.closed


async def test_a_stream_failing_before_audio_falls_back_to_per_sentence() -> None:
    stream = FakeStream(error=ProviderError(ErrorClass.SERVER_ERROR, "down", provider="fake:stream"))
    tts = StreamingFakeTTS(stream)
    session = text_session(tts)
    await session.idle()
    events = drain(session)
    assert stream.closed
    assert [c.text for c in tts.state.calls] == ["Sure thing.", "Your table is booked for two."]
    transcript = "".join(e.text for e in events if isinstance(e, ev.TranscriptDelta))
    assert transcript == "Sure thing. Your table is booked for two."
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "completed"


async def test_a_stream_failing_after_audio_fails_the_response() -> None:
    error = ProviderError(ErrorClass.NETWORK, "dropped", provider="fake:stream")
    stream = FakeStream(error=error, fail_after=1)
    tts = StreamingFakeTTS(stream)
    session = text_session(tts)
    await session.idle()
    events = drain(session)
    errors = [e for e in events if isinstance(e, ev.ErrorEvent)]
    assert [e.code for e in errors] == ["tts_unavailable"]
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "failed"
    assert tts.state.calls == [] and stream.closed


async def test_declining_to_stream_speaks_per_sentence() -> None:
    tts = StreamingFakeTTS(None)
    session = text_session(tts)
    await session.idle()
    assert tts.opened == 1
    assert [c.text for c in tts.state.calls] == ["Sure thing.", "Your table is booked for two."]


async def test_words_go_out_as_they_are_written_before_the_sentence_ends() -> None:
    stream = FakeStream()
    llm = FakeLLM(("Your appointment ", "is confirmed ", "for Thursday ", "at ten. ", "Bye."), hold_after=3)
    session = text_session(StreamingFakeTTS(stream), llm=llm)
    await stream.wait_for_text("Thursday")
    assert stream.text == "Your appointment is confirmed for Thursday "
    assert not any(flush for _, flush in stream.sent)  # mid-sentence: nothing is forced
    llm.gate.set()
    await session.idle()
    assert stream.text == "Your appointment is confirmed for Thursday at ten. Bye. "
    assert [text for text, flush in stream.sent if flush] == ["at ten. ", "Bye. "]


async def test_barge_in_on_a_stream_truncates_to_the_words_heard() -> None:
    stream = FakeStream(hold_after=2)  # the first sentence is spoken, then the stream holds
    tts = StreamingFakeTTS(stream)
    session = make_session(llm=FakeLLM(), tts=tts)
    await feed(session, spoken_turn())
    seen: list[ev.SessionEvent] = []
    while sum(isinstance(e, ev.AudioDelta) for e in seen) < 2:
        seen.append(await session.outbox.get())
    await feed(session, speak("Wait, stop."))
    await session.idle()
    item = next(i for i in session.conversation.items if i.role == "assistant")
    assert item.text == "Sure thing."  # what was spoken, not what the LLM wrote
    session.truncate(item.id, 0, 40)  # the first of the two 40 ms pieces: "Sure "
    assert session.conversation.get(item.id).text == "Sure"
    assert stream.closed


async def test_a_later_sentence_is_not_flushed_while_plenty_of_audio_is_ahead() -> None:
    stream = FakeStream(piece_seconds=1.5)  # "Sure thing." is 3 s of audio
    llm = FakeLLM(hold_after=1)
    session = text_session(StreamingFakeTTS(stream), llm=llm)
    while not isinstance(await session.outbox.get(), ev.AudioDelta):
        pass
    llm.gate.set()  # the session's clock stands still: all 3 s are still ahead
    await session.idle()
    assert stream.sent[0] == ("Sure thing. ", True)
    assert not any(flush for _, flush in stream.sent[1:])  # the end generates the rest
    assert stream.text == "Sure thing. Your table is booked for two. "


class EndlessStream(FakeStream):
    """A stream whose audio never ends once text arrives: 1 s pieces, up to `cap` bytes (so a
    missing bound fails the test instead of hanging it)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.yielded = 0

    async def audio(self) -> AsyncIterator[SpokenAudio]:
        await self.wait_for_text(" ")
        while self.yielded < self.cap:
            piece = tone(24_000, 1.0)
            self.yielded += len(piece)
            yield SpokenAudio(piece, "")
            await asyncio.sleep(0)


async def test_a_stream_whose_audio_never_ends_fails_the_response_at_the_bound() -> None:
    stream = EndlessStream(cap=10 * audio_bound_bytes(200, 24_000))
    session = text_session(StreamingFakeTTS(stream))
    await session.idle()
    events = drain(session)
    assert [e.code for e in events if isinstance(e, ev.ErrorEvent)] == ["tts_unavailable"]
    assert isinstance(events[-1], ev.ResponseDone) and events[-1].status == "failed"
    assert stream.closed
    # What went out is no more than the bound for the characters sent when it was reached.
    sent = sum(len(e.audio) for e in events if isinstance(e, ev.AudioDelta))
    assert 0 < sent <= audio_bound_bytes(stream.characters, 24_000)
    assert stream.yielded < 2 * audio_bound_bytes(stream.characters, 24_000)
