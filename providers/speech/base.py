"""The speech engine seam: one narrow base for speech-to-text and one for text-to-speech.

An STT engine turns one segment of PCM16 mono 16 kHz audio into a `Transcript`; a TTS engine
turns one speakable chunk of text into a stream of PCM16 mono chunks at its own `sample_rate`,
yielding audio as soon as it exists. The public `STTEngine.transcribe` and
`TTSEngine.synthesize` own timing, logging, error normalisation (and, for TTS, sample
alignment); an engine implements only `_transcribe` or `_synthesize`, the call to its own model
or wire. Cloud engines (providers/speech/) and the offline engines (voice/stt, voice/tts) both
subclass these, so the routing layer can run any of them without importing voice.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.audio_bound import audio_bound_bytes, too_much_audio

logger = logging.getLogger(__name__)

STT_SAMPLE_RATE = 16_000


class Clock(Protocol):
    """What an engine needs of a clock: a monotonic reading for its timings.

    voice/clock.py's clocks (the system clock and the tests' `ManualClock`) satisfy it; this
    narrower protocol keeps providers from importing voice.
    """

    def now(self) -> float: ...


class _MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = _MonotonicClock()


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    audio_seconds: float
    engine: str
    model: str | None = None
    language: str | None = None


class STTEngine(ABC):
    """One speech-to-text engine.

    Subclasses set `name` (e.g. ``"internal:whisper"``) and `billing_source`, and implement
    `_transcribe`. Anything `_transcribe` raises other than a `ProviderError` reaches the
    caller as `ProviderError(SERVER_ERROR)` (or `TIMEOUT` for a `TimeoutError`) whose message
    names only the engine and the exception type, so a key inside a library's message can
    never leak. Transcript text is never logged.
    """

    name: str
    billing_source: BillingSource
    records_usage: ClassVar[bool] = False
    """True for a composite that writes its own usage segments (the routed chains); whoever
    calls it then records nothing for the segment."""
    clock: Clock = SYSTEM_CLOCK

    async def transcribe(
        self, pcm16_16k: bytes, *, language: str | None = None, turn_id: str | None = None
    ) -> Transcript:
        """`turn_id` ties the segment to a voice turn where the engine records usage; others ignore it."""
        if len(pcm16_16k) % 2:
            raise ProviderError(
                ErrorClass.INVALID_REQUEST,
                f"PCM16 audio of {len(pcm16_16k)} bytes has half a sample",
                provider=self.name,
            )
        audio_seconds = len(pcm16_16k) / (2 * STT_SAMPLE_RATE)
        started = self.clock.now()
        failure: ProviderError | None = None
        try:
            transcript = await self._transcribe(pcm16_16k, language)
        except ProviderError as exc:
            _log_failure(self.name, exc.error_class, self.clock.now() - started, audio_seconds)
            raise
        except Exception as exc:
            failure = normalise_engine_error(self.name, exc)
            _log_failure(self.name, failure.error_class, self.clock.now() - started, audio_seconds)
        if failure is not None:
            # Raised outside the handler, so the original exception (whose text may hold a
            # secret) is not even attached as the error's __context__.
            raise failure
        logger.debug(
            "stt segment done",
            extra={
                "engine": self.name,
                "audio_seconds": round(audio_seconds, 3),
                "elapsed_ms": round((self.clock.now() - started) * 1000, 1),
                "chars": len(transcript.text),
            },
        )
        return transcript

    async def prefetch(
        self, pcm16_16k: bytes, *, language: str | None = None, previous: str | None = None
    ) -> str | None:
        """A speculative, unbilled decode of what was said so far (the caller paused);
        `previous` is the text of the turn's audio before these bytes, as context.

        Returns the partial text, or None where the engine does not speculate (the default:
        a cloud engine would charge for it) or has no CPU to spare right now. An engine that
        does keeps the result, so a `transcribe` of exactly these bytes (the turn ended with
        no further speech) answers at once. Never raises; errors mean None.
        """
        return None

    @abstractmethod
    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        """Transcribe one segment of PCM16 mono 16 kHz audio."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def normalise_engine_error(engine: str, exc: BaseException) -> ProviderError:
    """Wrap an engine's unexpected exception without carrying its (possibly secret) text."""
    error_class = ErrorClass.TIMEOUT if isinstance(exc, TimeoutError) else ErrorClass.SERVER_ERROR
    return ProviderError(error_class, f"{engine} failed: {type(exc).__name__}", provider=engine)


def _log_failure(engine: str, error_class: ErrorClass, elapsed: float, audio_seconds: float) -> None:
    logger.warning(
        "stt segment failed",
        extra={
            "engine": engine,
            "error_class": error_class.value,
            "elapsed_ms": round(elapsed * 1000, 1),
            "audio_seconds": round(audio_seconds, 3),
        },
    )


class TTSEngine(ABC):
    """One text-to-speech engine.

    Subclasses set `name`, `billing_source` and `sample_rate` and implement `_synthesize` as
    an async generator. Contract of `synthesize` (an async generator, so callers can hold
    it in `contextlib.aclosing`):

    - every yielded chunk is non-empty and a whole number of PCM16 samples, even if the
      engine's own chunks split a sample (a dangling byte waits for the next chunk, and a
      lone byte left at the very end is dropped);
    - text that is empty or only whitespace yields nothing and never reaches the engine;
    - closing the iterator (hold it in `contextlib.aclosing`) or cancelling the consuming
      task while it awaits a chunk closes the engine's generator at once, so its `finally`
      can kill a subprocess or close an HTTP stream; a stream merely dropped by a cancelled
      consumer is closed a moment later by the event loop's async-generator finaliser;
    - errors are normalised as in `STTEngine.transcribe`; text is never logged;
    - audio past `providers.speech.audio_bound` for the text's length ends the stream with a
      `SERVER_ERROR` (an engine that never ends its audio).
    """

    name: str
    billing_source: BillingSource
    records_usage: ClassVar[bool] = False
    """True for a composite that writes its own usage segments (the routed chains); whoever
    calls it then records nothing for the segment."""
    sample_rate: int
    clock: Clock = SYSTEM_CLOCK

    async def synthesize(
        self, text: str, *, voice: str | None = None, turn_id: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        """`turn_id` ties the segment to a voice turn where the engine records usage; others ignore it."""
        if not text.strip():
            return
        started = self.clock.now()
        first_audio: float | None = None
        pending = b""
        total = 0
        bound = audio_bound_bytes(len(text), self.sample_rate)
        chunks = self._synthesize(text, voice)
        failure: ProviderError | None = None
        try:
            async for chunk in chunks:
                data = pending + chunk if pending else chunk
                whole = len(data) - len(data) % 2
                pending = data[whole:]
                if not whole:
                    continue
                if first_audio is None:
                    first_audio = self.clock.now()
                total += whole
                if total > bound:
                    raise too_much_audio(self.name, len(text), self.sample_rate)
                yield data[:whole] if pending else data
        except ProviderError as exc:
            self._log_failure(exc.error_class, started, total)
            raise
        except Exception as exc:
            failure = normalise_engine_error(self.name, exc)
            self._log_failure(failure.error_class, started, total)
        finally:
            await aclose_quietly(chunks)
        if failure is not None:
            raise failure  # outside the handler: the original exception is not chained
        logger.debug(
            "tts segment done",
            extra={
                "engine": self.name,
                "chars": len(text),
                "ttfa_ms": None if first_audio is None else round((first_audio - started) * 1000, 1),
                "elapsed_ms": round((self.clock.now() - started) * 1000, 1),
                "audio_seconds": round(total / (2 * self.sample_rate), 3),
            },
        )

    @abstractmethod
    def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        """Yield PCM16 mono audio at `self.sample_rate` for `text` as it is produced."""

    def _log_failure(self, error_class: ErrorClass, started: float, total: int) -> None:
        logger.warning(
            "tts segment failed",
            extra={
                "engine": self.name,
                "error_class": error_class.value,
                "elapsed_ms": round((self.clock.now() - started) * 1000, 1),
                "audio_bytes": total,
            },
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


async def aclose_quietly(iterator: AsyncIterator[bytes]) -> None:
    """Close an async generator (running its `finally`); plain iterators have nothing to close."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
