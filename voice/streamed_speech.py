"""Speaking one reply over a streamed TTS connection, next to the per-sentence path.

`voice.pipeline` opens a `providers.speech.streaming.TTSStream` when the reply starts (while
the LLM is still on its first token) and, when one opens, hands it the reply's chunk queue:
`StreamedSpeech.run` sends each chunk the moment the sentence chunker cuts it and, at the same
time, plays the audio as it comes back. The transcript deltas and the truncation spans follow
the provider's alignment (the text each piece of audio speaks), so `conversation.item.truncate`
still knows what was heard. The stream is closed by the caller (barge-in cancels `run`).

If the stream fails before any audio came back, `StreamFailed.replay` holds the chunks it was
sent, so the pipeline speaks them, and the rest of the reply, per sentence instead (fallback is
allowed until the first audio, as everywhere else); after audio it is the reply's TTS error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from foundation import tracing
from providers.errors import ProviderError
from providers.speech.streaming import TTSStream
from voice.events import AudioDelta, TranscriptDelta
from voice.history import Conversation, Span
from voice.outbox import Outbox

if TYPE_CHECKING:
    from voice.pipeline import OutputEncoder, ResponseRun


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
        chunks: asyncio.Queue[str | None],
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
        self.sent: list[str] = []
        self.ended = False
        self.produced = 0
        self._held = ""

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
                raise StreamFailed(error, self.sent, self.ended) from None
            raise error from None

    async def _feed(self) -> None:
        run, stream = self.run, self.stream
        while (chunk := await self._chunks.get()) is not None:
            if run.error is not None:
                break  # the LLM failed: say no more
            run.latency.mark("tts_request")
            self.sent.append(chunk)
            await stream.send(chunk)
        self.ended = True
        await stream.end()

    async def _play(self) -> None:
        run, encoder = self.run, self._encoder
        async for spoken in self.stream.audio():
            if not self.produced:
                run.latency.tts_provider = run.latency.tts_provider or self.stream.name
                run.latency.tts_route = run.latency.tts_route or self.route
            run.latency.mark("tts_first_byte")
            self.produced += len(spoken.pcm)
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
