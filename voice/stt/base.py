"""The speech-to-text engine seam.

An engine turns one segment of PCM16 mono 16 kHz audio into a `Transcript`. The public
`STTEngine.transcribe` owns timing, logging and error normalisation; an engine implements
only `_transcribe`, the call to its own model or wire.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from voice.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger(__name__)

STT_SAMPLE_RATE = 16_000


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
    clock: Clock = SYSTEM_CLOCK

    async def transcribe(self, pcm16_16k: bytes, *, language: str | None = None) -> Transcript:
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
