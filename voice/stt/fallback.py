"""An ordered chain of STT engines that is itself an STT engine.

Engines are tried in list order. The chain moves on only when an engine fails with a
fallback-eligible `ProviderError` (the contract's ERROR_POLICY) or exceeds the per-attempt
timeout; a fail-fast error (e.g. INVALID_REQUEST) propagates at once, because the next
engine would reject the same audio. The returned `Transcript` keeps the serving engine's
name, and every segment's attempts are recorded so the caller can trace and bill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STTEngine, Transcript


@dataclass(frozen=True, slots=True)
class Attempt:
    """One engine's try at one segment; `error_class` is None when it served the segment."""

    engine: str
    error_class: ErrorClass | None = None


def all_failed(chain: str, kind: str, attempts: Sequence[Attempt], last: ProviderError) -> ProviderError:
    tried = ", ".join(f"{a.engine}={a.error_class.value if a.error_class else 'ok'}" for a in attempts)
    return ProviderError(last.error_class, f"all {kind} engines failed ({tried})", provider=chain)


def attempt_timeout_error(engine: str, seconds: float) -> ProviderError:
    return ProviderError(ErrorClass.TIMEOUT, f"{engine} gave no result within {seconds:g}s", provider=engine)


class FallbackSTT(STTEngine):
    """`last_served` / `last_attempts` describe the most recent segment of this instance;
    when one chain serves concurrent segments, use `on_served` / `on_attempt` instead."""

    def __init__(
        self,
        engines: Sequence[STTEngine],
        *,
        attempt_timeout: float | None = None,
        on_served: Callable[[STTEngine], None] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        name: str | None = None,
    ) -> None:
        if not engines:
            raise ValueError("FallbackSTT needs at least one engine")
        self.engines = tuple(engines)
        self.name = name or "fallback:" + ",".join(e.name for e in self.engines)
        self.attempt_timeout = attempt_timeout
        self._on_served = on_served
        self._on_attempt = on_attempt
        self.last_served: STTEngine | None = None
        self.last_attempts: tuple[Attempt, ...] = ()

    @property
    def billing_source(self) -> BillingSource:  # type: ignore[override]
        """The billing source of the engine that served the last segment, else the primary's."""
        return (self.last_served or self.engines[0]).billing_source

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        attempts: list[Attempt] = []
        self.last_served = None
        self.last_attempts = ()
        error: ProviderError | None = None
        for engine in self.engines:
            try:
                transcript = await self._attempt(engine, pcm16_16k, language)
            except ProviderError as exc:
                error = exc
                self._record(attempts, Attempt(engine.name, exc.error_class))
                if not exc.fallback_eligible:
                    raise
                continue
            self._record(attempts, Attempt(engine.name))
            self.last_served = engine
            if self._on_served is not None:
                self._on_served(engine)
            return transcript
        assert error is not None
        raise all_failed(self.name, "STT", attempts, error)

    async def _attempt(self, engine: STTEngine, pcm16_16k: bytes, language: str | None) -> Transcript:
        if self.attempt_timeout is None:
            return await engine.transcribe(pcm16_16k, language=language)
        try:
            async with asyncio.timeout(self.attempt_timeout):
                return await engine.transcribe(pcm16_16k, language=language)
        except TimeoutError:
            raise attempt_timeout_error(engine.name, self.attempt_timeout) from None

    def _record(self, attempts: list[Attempt], attempt: Attempt) -> None:
        attempts.append(attempt)
        self.last_attempts = tuple(attempts)
        if self._on_attempt is not None:
            self._on_attempt(attempt)
