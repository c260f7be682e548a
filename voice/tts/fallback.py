"""An ordered chain of TTS engines that is itself a TTS engine.

Engines are tried in list order; every engine's audio is resampled to the chain's own
`sample_rate` so the caller hears one format whichever engine speaks. The chain moves on
only on a fallback-eligible `ProviderError`, or when an engine yields no audio within the
per-attempt timeout, and only while nothing has been yielded for the segment: once the
first audio chunk went out, a later error propagates (the listener already hears that
voice, and restarting the sentence in another would repeat it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from providers.contract import BillingSource
from providers.errors import ProviderError
from providers.speech.base import TTSEngine, aclose_quietly
from providers.speech.pcm import Resampler
from voice.stt.fallback import Attempt, all_failed, attempt_timeout_error


class FallbackTTS(TTSEngine):
    """`last_served` is set when an engine yields the segment's first audio (so a segment
    that failed mid-way is still billed to the engine that spoke); `last_attempts` lists
    the segment's attempts. With concurrent segments on one instance use the callbacks."""

    def __init__(
        self,
        engines: Sequence[TTSEngine],
        *,
        sample_rate: int | None = None,
        attempt_timeout: float | None = None,
        on_served: Callable[[TTSEngine], None] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        name: str | None = None,
    ) -> None:
        if not engines:
            raise ValueError("FallbackTTS needs at least one engine")
        self.engines = tuple(engines)
        self.sample_rate = sample_rate or max(e.sample_rate for e in self.engines)
        self.name = name or "fallback:" + ",".join(e.name for e in self.engines)
        self.attempt_timeout = attempt_timeout
        self._on_served = on_served
        self._on_attempt = on_attempt
        self.last_served: TTSEngine | None = None
        self.last_attempts: tuple[Attempt, ...] = ()

    @property
    def billing_source(self) -> BillingSource:  # type: ignore[override]
        """The billing source of the engine that served the last segment, else the primary's."""
        return (self.last_served or self.engines[0]).billing_source

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        attempts: list[Attempt] = []
        self.last_served = None
        self.last_attempts = ()
        error: ProviderError | None = None
        for engine in self.engines:
            resampler = Resampler(engine.sample_rate, self.sample_rate)
            stream = engine.synthesize(text, voice=voice)
            received = started = False
            try:
                while True:
                    try:
                        chunk = await self._next_chunk(engine, stream, first=not received)
                    except StopAsyncIteration:
                        break
                    received = True
                    out = resampler.process(chunk)
                    if out:
                        if not started:
                            started = True
                            self._served(engine)
                        yield out
                tail = resampler.flush()
                if tail:
                    if not started:
                        started = True
                        self._served(engine)
                    yield tail
            except ProviderError as exc:
                error = exc
                self._record(attempts, Attempt(engine.name, exc.error_class))
                if started or not exc.fallback_eligible:
                    raise
                continue
            finally:
                await aclose_quietly(stream)
            if not started:
                self._served(engine)
            self._record(attempts, Attempt(engine.name))
            return
        assert error is not None
        raise all_failed(self.name, "TTS", attempts, error)

    async def _next_chunk(self, engine: TTSEngine, stream: AsyncIterator[bytes], *, first: bool) -> bytes:
        if not first or self.attempt_timeout is None:
            return await anext(stream)
        try:
            async with asyncio.timeout(self.attempt_timeout):
                return await anext(stream)
        except TimeoutError:
            raise attempt_timeout_error(engine.name, self.attempt_timeout) from None

    def _served(self, engine: TTSEngine) -> None:
        self.last_served = engine
        if self._on_served is not None:
            self._on_served(engine)

    def _record(self, attempts: list[Attempt], attempt: Attempt) -> None:
        attempts.append(attempt)
        self.last_attempts = tuple(attempts)
        if self._on_attempt is not None:
            self._on_attempt(attempt)
