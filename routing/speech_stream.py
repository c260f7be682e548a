"""A streamed TTS reply as one routed segment: planned, held, attempted and settled like the
per-sentence ones (`routing.speech`), but opened once per reply.

`open_tts_stream` streams only when the TTS plan's first candidate can (its protocol has a
`providers.speech.builders.STREAM_TTS_BUILDERS` entry); the attempts are the leading
stream-capable candidates, so the chain's order is kept. Opening is the attempt: a refused
key, a refused handshake or a connect timeout cools the profile down and moves to the next
one. When none opens, it answers None and the caller speaks the reply per sentence, whose own
plans skip what just failed and end with the built-in engine. A stream that fails after it
opened (a key refused at the first text) cools its profile down the same way, so the
per-sentence fallback skips it. `RoutedTTSStream` records the segment (characters sent, audio
produced, served connection) when it is closed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from billing.usage import SegmentStatus
from providers.contract import PRESETS, ProviderId
from providers.errors import ProviderError
from providers.speech.builders import STREAM_TTS_BUILDERS, SpeechTarget
from providers.speech.streaming import SpokenAudio, StreamingTTS, TTSStream
from routing.errors import AllAttemptsFailedError
from routing.resolver import Plan, PlannedAttempt
from routing.runner import NO_RETRY, AttemptRunner, Attempts, Open, Run
from routing.trace import TraceEntry

Admit = Callable[[PlannedAttempt], Awaitable[SpeechTarget | TraceEntry]]
Account = Callable[[PlannedAttempt | None, SegmentStatus, float, int, float], Awaitable[object]]
"""(served, status, started, characters, audio seconds) → the segment recorded and settled."""
Failed = Callable[[ProviderError], Awaitable[None]]
"""The served connection failed after it opened: record its cooldown."""


def streams(attempt: PlannedAttempt) -> bool:
    """Whether this candidate's provider speaks a streamed TTS wire."""
    conn = attempt.connection
    if conn.provider is ProviderId.INTERNAL:
        return False
    preset = PRESETS[conn.provider]
    return (preset.audio_protocol or preset.protocol) in STREAM_TTS_BUILDERS


def stream_plan(plan: Plan) -> Plan | None:
    """The leading stream-capable candidates of a TTS plan; None when the first cannot stream."""
    leading: list[PlannedAttempt] = []
    for attempt in plan.attempts:
        if not streams(attempt):
            break
        leading.append(attempt)
    if not leading:
        return None
    return Plan(intent=plan.intent, source=plan.source, strict=False, items=tuple(leading))


async def open_tts_stream(
    runner: AttemptRunner,
    plan: Plan,
    run: Run,
    *,
    admit: Admit,
    output_rate: int,
    voice: str | None,
    open_within: float,
) -> TTSStream | None:
    """The first candidate's stream that opens, or None when none does."""

    async def prepare(attempt: PlannedAttempt) -> Open[TTSStream] | TraceEntry:
        target = await admit(attempt)
        if isinstance(target, TraceEntry):
            return target
        conn = attempt.connection
        preset = PRESETS[conn.provider]
        engine: StreamingTTS = STREAM_TTS_BUILDERS[preset.audio_protocol or preset.protocol](
            target, output_rate
        )

        async def one() -> AsyncIterator[TTSStream]:
            stream = await engine.open_stream(voice=voice)
            if stream is not None:
                yield stream

        return one

    attempts = Attempts(prepare, lambda _: True, first_output_timeout=open_within, retry=NO_RETRY)
    try:
        async with contextlib.aclosing(runner.run(plan, run, attempts)) as opened:
            async for stream in opened:
                return stream
    except AllAttemptsFailedError:
        return None
    return None


class RoutedTTSStream(TTSStream):
    """A provider's stream as a routed segment: settled and recorded once, when closed."""

    def __init__(self, inner: TTSStream, served: PlannedAttempt, account: Account, failed: Failed) -> None:
        self.name = served.connection.profile_id
        self.billing_source = served.billing_source
        self.sample_rate = inner.sample_rate
        self.served = served
        self._inner = inner
        self._account = account
        self._failed = failed
        self._started = time.perf_counter()
        self._produced = 0
        self._status = SegmentStatus.CANCELLED
        self._closed = False

    async def send(self, text: str, *, flush: bool = False) -> bool:
        generates = await self._inner.send(text, flush=flush)
        self.characters = self._inner.characters
        return generates

    async def end(self) -> None:
        await self._inner.end()

    async def audio(self) -> AsyncIterator[SpokenAudio]:
        try:
            async for spoken in self._inner.audio():
                self._produced += len(spoken.pcm)
                yield spoken
            self._status = SegmentStatus.OK
        except ProviderError as exc:
            self._status = SegmentStatus.FAILED
            await self._failed(exc)
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            produced = self._produced
            # A stream that never spoke is no segment: the hold is released, nothing recorded.
            await self._account(
                self.served if produced else None,
                self._status,
                self._started,
                self.characters if produced else 0,
                produced / (2 * self.sample_rate),
            )
