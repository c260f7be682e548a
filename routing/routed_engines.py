"""A caller's speech chains as one STT engine and one TTS engine (fallback is a composite
with the same interface): what a voice session or an `/v1/audio/*` request holds.

Each call is one segment run by `routing.speech.SpeechRouter` (planned, held, attempted,
cooled down, settled, recorded), so `records_usage` is True and the caller records nothing
itself. Routing failures become the `ProviderError` the voice pipeline knows (a segment the
org's credits cannot cover: `providers.errors.Refused`, `insufficient_credits`); `last_served`
names the engine that served the latest segment, for latency reports. `RoutedTTS.open_stream`
offers a whole reply over one streamed connection when the chain's first engine can stream;
`RoutedSTT.open_stream` hears a turn over one streamed connection while the caller speaks when
the STT chain's first engine can (`routing.speech_stt_stream`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

from billing.policy import charge_before_audio
from billing.preflight import InsufficientCreditsError
from billing.tiers import policy_for
from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError, insufficient_credits
from providers.speech.base import STTEngine, Transcript, TTSEngine
from providers.speech.streaming import TTSStream
from providers.speech.streaming_stt import STTStream
from routing.catalog import price_for
from routing.errors import AllAttemptsFailedError, RoutingError
from routing.resolver import PlannedAttempt
from routing.router import CallContext
from routing.runner import Run
from routing.speech import OUTPUT_RATE, SpeechRouter
from routing.trace import AttemptTrace


@dataclass(frozen=True, slots=True)
class Served:
    """Who served a segment, as the voice session's accounts read an engine."""

    name: str
    billing_source: BillingSource


def _served(attempt: PlannedAttempt | None) -> Served | None:
    if attempt is None:
        return None
    return Served(attempt.connection.profile_id, attempt.billing_source)


def _as_provider_error(exc: Exception, kind: str) -> ProviderError:
    if isinstance(exc, AllAttemptsFailedError):
        last = exc.last_error
        error_class = last.error_class if last is not None else ErrorClass.SERVER_ERROR
        return ProviderError(error_class, f"no {kind} engine served the segment", provider="router")
    if isinstance(exc, InsufficientCreditsError):
        return insufficient_credits(str(exc), code=exc.code)
    return ProviderError(ErrorClass.NOT_FOUND, str(exc), provider="router")


class RoutedSTT(STTEngine):
    records_usage = True
    billing_source = BillingSource.PLATFORM
    """Unused: each segment is billed to the engine that served it."""

    def __init__(self, speech: SpeechRouter, ctx: CallContext) -> None:
        self.name = "routed:stt"
        self._speech = speech
        self._ctx = ctx
        self.last_served: Served | None = None
        self.last_route: str | None = None
        """The latest segment's attempt trace in header form: who was tried, skipped and why."""
        self.last_trace: AttemptTrace | None = None
        """The latest segment's attempt trace (filling in while the segment runs)."""

    async def transcribe(
        self, pcm16_16k: bytes, *, language: str | None = None, turn_id: str | None = None
    ) -> Transcript:
        ctx = replace(self._ctx, turn_id=turn_id or self._ctx.turn_id)
        run = Run(AttemptTrace(intent="stt"))
        self.last_trace = run.trace
        try:
            transcript = await self._speech.transcribe(ctx, pcm16_16k, language=language, run=run)
        except (AllAttemptsFailedError, InsufficientCreditsError, RoutingError) as exc:
            raise _as_provider_error(exc, "STT") from None
        finally:
            self.last_route = run.trace.header()
        self.last_served = _served(run.served)
        return transcript

    async def open_stream(
        self, *, sample_rate: int, language: str | None = None, turn_id: str | None = None
    ) -> STTStream | None:
        """The turn over one streamed connection (`providers.speech.streaming_stt.StreamingSTT`),
        or None: transcribe its audio at its end with `transcribe`."""
        ctx = replace(self._ctx, turn_id=turn_id or self._ctx.turn_id)
        run = Run(AttemptTrace(intent="stt"))

        def settled(done: Run) -> None:
            self.last_trace = done.trace
            self.last_route = done.trace.header()
            self.last_served = _served(done.served)

        try:
            stream = await self._speech.open_stt_stream(
                ctx, sample_rate=sample_rate, language=language, run=run, settled=settled
            )
        except (AllAttemptsFailedError, InsufficientCreditsError, RoutingError) as exc:
            raise _as_provider_error(exc, "STT") from None
        return _STTStreamErrors(stream) if stream is not None else None

    async def prefetch(
        self, pcm16_16k: bytes, *, language: str | None = None, previous: str | None = None
    ) -> str | None:
        try:
            return await self._speech.prefetch(self._ctx, pcm16_16k, language=language, previous=previous)
        except Exception:
            return None  # speculation only: the turn's real transcript will say what failed

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        return await self.transcribe(pcm16_16k, language=language)


class RoutedTTS(TTSEngine):
    records_usage = True
    billing_source = BillingSource.PLATFORM
    """Unused: each segment is billed to the engine that served it."""
    sample_rate = OUTPUT_RATE

    def __init__(self, speech: SpeechRouter, ctx: CallContext) -> None:
        self.name = "routed:tts"
        self._speech = speech
        self._ctx = ctx
        self.last_served: Served | None = None
        self.last_route: str | None = None
        """The latest segment's attempt trace in header form: who was tried, skipped and why."""
        self.last_trace: AttemptTrace | None = None
        """The latest segment's attempt trace (filling in while the segment runs)."""
        self._last_attempt: PlannedAttempt | None = None

    async def charge_before_audio(self, text: str) -> int | None:
        """What the latest segment (`text`, already speaking) is charged, micro-USD, when that is
        known before its audio ends: a price by characters (or none) and no voice fee for its source;
        None when its audio counts (`billing.policy.charge_before_audio`)."""
        served = self._last_attempt
        if served is None:
            return None
        policy = policy_for(await self._speech.tier(self._ctx.org_id))
        return charge_before_audio(
            policy, served.billing_source, price_for(served.info), characters=len(text)
        )

    async def synthesize(
        self, text: str, *, voice: str | None = None, turn_id: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        self._last_attempt = None
        if not text.strip():
            return
        ctx = replace(self._ctx, turn_id=turn_id or self._ctx.turn_id)
        run = Run(AttemptTrace(intent="tts"))
        self.last_trace = run.trace
        chunks = self._speech.synthesize(ctx, text, voice=voice, run=run)
        try:
            async for chunk in chunks:
                self._last_attempt = run.served or self._last_attempt
                self.last_served = _served(run.served) or self.last_served
                self.last_route = run.trace.header()
                yield chunk
        except (AllAttemptsFailedError, InsufficientCreditsError, RoutingError) as exc:
            raise _as_provider_error(exc, "TTS") from None
        finally:
            await chunks.aclose()

    def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        return self.synthesize(text, voice=voice)

    async def open_stream(self, *, voice: str | None = None, turn_id: str | None = None) -> TTSStream | None:
        """The reply over one streamed connection (`providers.speech.streaming.StreamingTTS`),
        or None: speak it per sentence with `synthesize`."""
        self._last_attempt = None
        ctx = replace(self._ctx, turn_id=turn_id or self._ctx.turn_id)
        run = Run(AttemptTrace(intent="tts"))
        self.last_trace = run.trace
        try:
            stream = await self._speech.open_stream(ctx, voice=voice, run=run)
        except (AllAttemptsFailedError, InsufficientCreditsError, RoutingError) as exc:
            raise _as_provider_error(exc, "TTS") from None
        finally:
            self.last_route = run.trace.header()
        if stream is not None:
            self.last_served = _served(run.served)
        return stream


class _STTStreamErrors(STTStream):
    """A routed stream whose routing failures reach the caller as the `ProviderError` it knows."""

    def __init__(self, inner: STTStream) -> None:
        self.name = inner.name
        self.billing_source = inner.billing_source
        self.sample_rate = inner.sample_rate
        self._inner = inner

    @property
    def fed_seconds(self) -> float:
        return self._inner.fed_seconds

    @property
    def partial(self) -> str:
        return self._inner.partial

    def feed(self, pcm: bytes) -> None:
        self._inner.feed(pcm)

    async def commit(self) -> Transcript:
        try:
            return await self._inner.commit()
        except (AllAttemptsFailedError, InsufficientCreditsError, RoutingError) as exc:
            raise _as_provider_error(exc, "STT") from None

    async def aclose(self) -> None:
        await self._inner.aclose()
