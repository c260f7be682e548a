"""Speaking one reply over a streamed TTS connection, next to the per-sentence path.

`voice.pipeline` opens a `providers.speech.streaming.TTSStream` when the reply starts (while
the LLM is still on its first token) and, when one opens, hands it the reply's chunk queue:
`StreamedSpeech.speak` sends the reply's words as the LLM writes them (`voice.word_feed`) and,
at the same time, plays the audio as it comes back. The provider generates when its buffer
reaches its schedule (a long first sentence starts speaking before it ends), and where the
sentence chunker cuts, the piece is flushed (generated now) only when that gains: while the
listener has less than `FLUSH_AHEAD` seconds of audio ahead (the first sentence of a reply
always), so a short first sentence starts as soon as it is written and later ones do not
wait for the schedule when the audio is running out; otherwise the provider takes longer
text, which it speaks better. The transcript deltas and the truncation spans follow the
provider's alignment (the text each piece of audio speaks), so `conversation.item.truncate`
still knows what was heard. The stream is closed by the caller (barge-in cancels `speak`).

Audio past `providers.speech.audio_bound` for the characters sent so far ends the reply
with the stream's error (a provider that never ends its audio).

If the stream fails before any audio came back, `StreamFailed.replay` holds the chunks taken
from the queue so far, so the pipeline speaks them, and the rest of the reply, per sentence
instead (fallback is allowed until the first audio, as everywhere else); after audio it is
the reply's TTS error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from foundation import tracing
from providers.errors import ProviderError
from providers.speech.audio_bound import audio_bound_bytes, too_much_audio
from providers.speech.streaming import TTSStream
from voice.events import AudioDelta, TranscriptDelta
from voice.history import Conversation, Span
from voice.outbox import Outbox
from voice.word_feed import WordFeed, Written

if TYPE_CHECKING:
    from voice.pipeline import OutputEncoder, ResponseRun

FLUSH_AHEAD = 2.0
"""Seconds of audio still ahead of the listener under which a sentence end is flushed: the
provider's schedule would make it wait for more text (160 characters after the first
generation, a second or more of LLM writing) while the listener runs out of audio."""


class StreamFailed(Exception):
    """The stream failed before its first audio; speak `replay` (and what follows) per sentence."""

    def __init__(self, error: ProviderError, replay: list[str], ended: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.replay = replay
        self.ended = ended
        """True when the chunk queue's end was already taken: nothing more will come."""


class StreamedSpeech:
    def __init__(
        self,
        run: ResponseRun,
        stream: TTSStream,
        chunks: asyncio.Queue[str | Written | None],
        *,
        encoder: OutputEncoder,
        outbox: Outbox,
        conversation: Conversation,
        route: str | None = None,
    ) -> None:
        self.run = run
        self.route = route
        """The attempt trace that opened the stream, reported once it speaks."""
        self.stream = stream
        self._chunks = chunks
        self._encoder = encoder
        self._outbox = outbox
        self._conversation = conversation
        self.taken: list[str] = []
        """The chunks taken from the queue: what a fallback per sentence must still speak."""
        self.ended = False
        self.produced = 0
        self._held = ""
        self._feed_text = WordFeed()
        self._first_audio_at: float | None = None

    async def speak(self) -> None:
        """Speak until the stream's audio ends; raises `StreamFailed` or the `ProviderError`."""
        run = self.run
        try:
            with tracing.step("voice.tts", {"patchbay.turn_id": run.turn_id, "patchbay.streamed": True}):
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._feed())
                    await self._play()
        except* ProviderError as group_error:
            error = group_error.exceptions[0]
            assert isinstance(error, ProviderError)
            if not self.produced:
                raise StreamFailed(error, self.taken, self.ended) from None
            raise error from None

    async def _feed(self) -> None:
        run, stream, feed = self.run, self.stream, self._feed_text
        while not self.ended:
            # A delta's `Written` and the chunks cut from it are queued together: take them
            # together, so a sentence end is flushed with the words that end it.
            batch = [await self._chunks.get()]
            while not self._chunks.empty():
                batch.append(self._chunks.get_nowait())
            for item in batch:
                if item is None:
                    self.ended = True
                elif isinstance(item, Written):
                    feed.write(item.text)
                else:
                    self.taken.append(item)
                    feed.cut(item)
            if run.error is not None:
                break  # the LLM failed: say no more
            for piece in feed.take(final=self.ended):
                flush = piece.boundary and self._ahead() < FLUSH_AHEAD
                if await stream.send(piece.text, flush=flush):
                    run.latency.mark("tts_request")
        self.ended = True
        if stream.characters:
            run.latency.mark("tts_request")  # no-op unless the end is what generates first
        await stream.end()

    def _ahead(self) -> float:
        """Seconds of audio the listener has yet to hear (played in real time from the first)."""
        if self._first_audio_at is None:
            return 0.0
        heard = self.run.latency.clock.now() - self._first_audio_at
        return self.produced / (2 * self.stream.sample_rate) - heard

    async def _play(self) -> None:
        run, encoder = self.run, self._encoder
        async for spoken in self.stream.audio():
            if not self.produced:
                self._first_audio_at = run.latency.clock.now()
                run.latency.tts_provider = run.latency.tts_provider or self.stream.name
                run.latency.tts_route = run.latency.tts_route or self.route
            run.latency.mark("tts_first_byte")
            self.produced += len(spoken.pcm)
            if self.produced > audio_bound_bytes(self.stream.characters, self.stream.sample_rate):
                raise too_much_audio(self.stream.name, self.stream.characters, self.stream.sample_rate)
            start_ms = encoder.position_ms
            audio = encoder.encode(spoken.pcm)
            said = self._said(spoken.text)
            if said:
                self._outbox.put(TranscriptDelta(run.response_id, run.item_id, said))
                run.spoken += said
            seconds = len(spoken.pcm) / (2 * self.stream.sample_rate)
            run.tally.add(self.stream.name, self.stream.billing_source, len(said), seconds)
            if said:
                self._conversation.add_span(run.item_id, Span(said.strip(), start_ms, encoder.position_ms))
            if audio and self._outbox.put(AudioDelta(run.response_id, run.item_id, audio)):
                run.latency.mark("first_audio")
        if run.error is None:
            tail = encoder.flush()
            if tail:
                self._outbox.put(AudioDelta(run.response_id, run.item_id, tail))

    def _said(self, text: str) -> str:
        """The next transcript delta: deltas join into the spoken text with no trailing space
        (whitespace at an end is held until more words follow it)."""
        combined = self._held + text
        out = combined.rstrip()
        self._held = combined[len(out) :]
        if not self.run.spoken:
            out = out.lstrip()
        return out
