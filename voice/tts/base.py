"""The text-to-speech engine seam.

An engine turns one speakable chunk of text into a stream of PCM16 mono chunks at its own
`sample_rate`, yielding audio as soon as it exists. The public `TTSEngine.synthesize` owns
timing, logging, error normalisation and sample alignment; an engine implements only
`_synthesize`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from voice.clock import SYSTEM_CLOCK, Clock
from voice.stt.base import normalise_engine_error

logger = logging.getLogger(__name__)


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
    - errors are normalised as in `STTEngine.transcribe`; text is never logged.
    """

    name: str
    billing_source: BillingSource
    sample_rate: int
    clock: Clock = SYSTEM_CLOCK

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        started = self.clock.now()
        first_audio: float | None = None
        pending = b""
        total = 0
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
