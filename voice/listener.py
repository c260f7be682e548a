"""The session's input side: client audio in, server VAD and endpointing, and the caller's turn
handed over (`ended`) when it ends, or when the client commits the buffer by hand.

While the caller speaks it looks ahead: a pause's audio is decoded (`voice.partials`), which may
end the turn at once or, on a complete sentence, ask for a speculated reply (`speculate`); a
streaming STT engine hears the turn as it is spoken (`voice.streamed_stt`), and the stream goes
with the turn. What the session does about speech starting (barge-in) is its own (`started`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from providers.speech.base import STTEngine
from providers.speech.streaming_stt import StreamingSTT
from voice.callbacks import WeakCallback
from voice.clock import Clock
from voice.config import SessionConfig, SessionLimits
from voice.endpointing import SpeechPaused as DetectedPause
from voice.endpointing import SpeechResumed as DetectedResume
from voice.endpointing import SpeechStarted as DetectedStart
from voice.endpointing import SpeechStopped as DetectedStop
from voice.errors import ClientError
from voice.events import InputCleared, SpeechStopped
from voice.input import InputAudio, InputError
from voice.latency import TurnLatency
from voice.outbox import Outbox
from voice.partials import Decoded, Partials
from voice.speculation import HeldReply
from voice.streamed_stt import StreamedTurn

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


@dataclass(frozen=True, slots=True)
class EndedTurn:
    """The caller's turn, as the input side hands it over."""

    item_id: str
    pcm: bytes
    """The turn's audio at the input rate (as `InputAudio.take` gives it)."""
    rate: int
    latency: TurnLatency
    respond: bool
    decoded: Decoded | None = None
    """What its pauses already sent to the STT (`voice.partials`)."""
    streamed: StreamedTurn | None = None
    """Its stream to the STT, opened at its speech start (a streaming engine)."""


class Listener:
    def __init__(
        self,
        config: Callable[[], SessionConfig],
        limits: SessionLimits,
        *,
        outbox: Outbox,
        stt: STTEngine,
        held: HeldReply,
        clock: Clock,
        ids: Callable[[str], str],
        spawn: Spawn,
        speculate: Callable[[str], None],
        started: Callable[[str, int], None],
        ended: Callable[[EndedTurn], None],
    ) -> None:
        """`config`: the session's settings, read as they are now; `started(item_id,
        audio_start_ms)`: speech began; `ended`: a turn to commit."""
        self._config, self._limits = config, limits
        self._outbox, self._stt, self._held = outbox, stt, held
        self._clock, self._ids, self._spawn = clock, ids, spawn
        self._started, self._ended = started, ended
        self._input = self._new_input()
        self._speech_item: str | None = None
        self._speech_start_ms: int | None = None
        # Weakly: the partials are the listener's own, and a strong one would be a cycle.
        self._partials = Partials(stt, spawn, WeakCallback(self._end_turn_now), speculate)
        self._streamed: StreamedTurn | None = None
        """The turn in progress, streamed to the STT while the caller speaks (a streaming engine)."""
        self.closed = False

    def _new_input(self) -> InputAudio:
        config = self._config()
        return InputAudio(
            config.input_format, config.turn_detection, max_seconds=self._limits.max_buffer_seconds
        )

    @property
    def speaking(self) -> bool:
        return self._input.speaking

    @property
    def quiet(self) -> bool:
        """Nothing the caller said is waiting here: no speech in progress or, without server
        VAD, no audio buffered for a commit."""
        audio = self._input
        return not audio.speaking if audio.detector is not None else audio.buffered_ms == 0

    @property
    def streamed_turn_id(self) -> str | None:
        """The id of the turn being streamed to the STT, if one is."""
        return self._streamed.turn_id if self._streamed is not None else None

    def restart(self) -> None:
        """A new input format or turn detection: start the input side afresh."""
        self._input = self._new_input()
        self._speech_item = None
        self._partials.reset()
        self._held.discard()
        self._drop_streamed()

    def append(self, data: bytes) -> None:
        """Take client audio in the session's input format (the hot path: no task, no I/O)."""
        try:
            events = self._input.append(data)
        except InputError as exc:
            raise ClientError(exc.code, str(exc), param="audio") from None
        if self._streamed is not None:
            self._streamed.feed(self._input.last)  # the chunk just buffered, as PCM16
        for event in events:
            if isinstance(event, DetectedStart):
                self._speech_started(event)
            elif isinstance(event, DetectedPause):
                self._paused(event)
            elif isinstance(event, DetectedResume):
                self._held.discard()
            elif isinstance(event, DetectedStop):
                self._speech_stopped(event.audio_end_ms, event.speech_end_ms)
        if self._input.full and self._input.speaking:
            # A monologue longer than the buffer: end the turn here rather than drop audio.
            assert self._input.detector is not None
            self._input.detector.reset()
            self._speech_stopped(int(self._input.end_ms))

    def _paused(self, event: DetectedPause) -> None:
        detector = self._input.detector
        if detector is None or self.closed:
            return
        start = self._speech_start_ms

        def audio(start_ms: int | None, end_ms: int) -> bytes:
            return self._input.peek(start if start_ms is None else start_ms, end_ms)

        rate = self._input.format.sample_rate
        self._partials.paused(event, detector.position_ms, audio, rate, detector, self._config().language)

    def _end_turn_now(self) -> None:
        """A partial transcript showed the turn complete and its silence already passed."""
        detector = self._input.detector
        for event in detector.finish() if detector is not None else ():
            if isinstance(event, DetectedStop):
                self._speech_stopped(event.audio_end_ms, event.speech_end_ms)

    def _speech_started(self, event: DetectedStart) -> None:
        self._partials.reset()
        self._held.discard()
        self._speech_item = item_id = self._ids("item")
        self._speech_start_ms = event.audio_start_ms
        if isinstance(self._stt, StreamingSTT) and not self.closed:
            self._drop_streamed()
            rate, turn_id = self._input.format.sample_rate, self._ids("turn")
            language = self._config().language
            opening = self._stt.open_stream(sample_rate=rate, language=language, turn_id=turn_id)
            self._streamed = StreamedTurn(turn_id, opening, self._spawn)
            self._streamed.feed(self._input.peek(event.audio_start_ms, self._input.end_ms))
        self._started(item_id, event.audio_start_ms)

    def _speech_stopped(self, audio_end_ms: int, speech_end_ms: int | None = None) -> None:
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        latency = TurnLatency(self._clock)
        latency.mark("speech_end")
        self._outbox.put(SpeechStopped(item_id, audio_end_ms))
        pcm = self._input.take(self._speech_start_ms, audio_end_ms)
        decoded = self._partials.take(speech_end_ms)
        self._end(item_id, pcm, latency, self._config().create_response, decoded)

    def commit(self) -> str:
        """Manual commit: the buffered audio becomes a user item. Returns its id."""
        if self._input.buffered_ms < max(1, self._limits.min_commit_ms):
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: need at least {self._limits.min_commit_ms} ms of audio, have {self._input.buffered_ms:.0f} ms",
            )
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        latency = TurnLatency(self._clock)
        latency.mark("speech_end")
        self._end(item_id, self._input.take(), latency, False)
        return item_id

    def _end(
        self, item_id: str, pcm: bytes, latency: TurnLatency, respond: bool, decoded: Decoded | None = None
    ) -> None:
        streamed, self._streamed = self._streamed, None
        rate = self._input.format.sample_rate
        self._ended(EndedTurn(item_id, pcm, rate, latency, respond, decoded, streamed))

    def clear(self) -> None:
        self._input.clear()
        if self._input.detector is not None:
            self._input.detector.reset()
        self._speech_item = None
        self._partials.reset()
        self._held.discard()
        self._drop_streamed()
        self._outbox.put(InputCleared())

    def _drop_streamed(self) -> None:
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            self._spawn(streamed.aclose())

    async def aclose(self) -> None:
        """The session is closing: no stream is opened any more, and the one open is closed."""
        self.closed = True
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            await streamed.aclose()
