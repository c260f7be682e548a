"""A turn's streamed STT as one routed segment: opened when the caller starts speaking, fed
while they speak, committed at the endpoint, with fallback over the turn's audio.

A turn streams only when its STT plan's first candidate can (its protocol has a
`providers.speech.builders.STREAM_STT_BUILDERS` entry whose test accepts the model); the
stream attempts are the leading stream-capable candidates, so the chain's order is kept.
Opening is the attempt (connect, and the provider's session start): a refused key or a slow
handshake cools the profile down and moves to the next stream candidate, while the caller is
still speaking.

`RoutedSTTStream` keeps the turn's audio as it is fed. At the commit, the open stream's
committed transcript is the segment's; if no stream opened, or the open one fails before its
transcript (the failure is recorded on the served attempt, as a failure after output), the
rest of the plan (a batch engine such as HTTP Scribe, then the built-in floor) transcribes the
kept audio, in the same run, so the trace shows every step. The segment is recorded once, with
the seconds of audio streamed, billed to whoever produced the transcript; a stream closed
before its commit (the turn was cleared, the session closed) records nothing and releases its
hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

from billing.usage import SegmentStatus
from providers.contract import PRESETS, BillingSource, ProviderId
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, Transcript
from providers.speech.builders import STREAM_STT_BUILDERS, SpeechTarget
from providers.speech.pcm import Resampler
from providers.speech.streaming_stt import STTStream
from routing.errors import AllAttemptsFailedError
from routing.resolver import Plan, PlannedAttempt
from routing.runner import NO_RETRY, AttemptRunner, Attempts, Open, Run
from routing.trace import TraceEntry

Admit = Callable[[PlannedAttempt], Awaitable[SpeechTarget | TraceEntry]]
Fallback = Callable[[bytes], Awaitable[Transcript]]
"""Transcribes the turn's audio (PCM16 16 kHz) with the plan's candidates after the streams."""
Account = Callable[[PlannedAttempt | None, SegmentStatus, float, float], Awaitable[object]]
"""(served, status, started, audio seconds) → the segment recorded and settled."""
Failed = Callable[[PlannedAttempt, ProviderError], Awaitable[None]]
"""The served stream failed after it opened: record its failure and cooldown."""


def stt_streams(attempt: PlannedAttempt) -> bool:
    """Whether this candidate can hear an utterance over a streamed connection."""
    conn = attempt.connection
    if conn.provider is ProviderId.INTERNAL:
        return False
    preset = PRESETS[conn.provider]
    builder = STREAM_STT_BUILDERS.get(preset.audio_protocol or preset.protocol)
    return builder is not None and builder.streams(attempt.model)


def split_stt_plan(plan: Plan) -> tuple[Plan, Plan] | None:
    """(the leading stream-capable candidates, the rest) of an STT plan; None when the first
    candidate cannot stream. Skip entries before the first candidate go with the streams."""
    items = plan.items
    first = next((i for i, item in enumerate(items) if not isinstance(item, TraceEntry)), len(items))
    cut = first
    for item in items[first:]:
        if not (isinstance(item, PlannedAttempt) and stt_streams(item)):
            break
        cut += 1
    if cut == first:
        return None
    lead = Plan(intent=plan.intent, source=plan.source, strict=False, items=items[:cut])
    rest = Plan(intent=plan.intent, source=plan.source, strict=plan.strict, items=items[cut:])
    return lead, rest


async def open_stt_stream(
    runner: AttemptRunner,
    lead: Plan,
    run: Run,
    *,
    admit: Admit,
    sample_rate: int,
    language: str | None,
    open_within: float,
) -> STTStream:
    """The first stream candidate that opens; `AllAttemptsFailedError` when none does."""

    async def prepare(attempt: PlannedAttempt) -> Open[STTStream] | TraceEntry:
        target = await admit(attempt)
        if isinstance(target, TraceEntry):
            return target
        preset = PRESETS[attempt.connection.provider]
        engine = STREAM_STT_BUILDERS[preset.audio_protocol or preset.protocol].build(target)

        async def one() -> AsyncIterator[STTStream]:
            stream = await engine.open_stream(sample_rate=sample_rate, language=language)
            if stream is not None:
                yield stream

        return one

    attempts = Attempts(prepare, lambda _: True, first_output_timeout=open_within, retry=NO_RETRY)
    async with contextlib.aclosing(runner.run(lead, run, attempts)) as opened:
        async for stream in opened:
            return stream
    raise AssertionError("a served stream attempt yields its stream")


class RoutedSTTStream(STTStream):
    """The routed segment around a provider's stream; see the module docstring."""

    billing_source = BillingSource.PLATFORM
    """Unused: the segment is billed to the engine that served it."""

    def __init__(
        self,
        *,
        sample_rate: int,
        run: Run,
        opening: Awaitable[STTStream],
        fallback: Fallback,
        account: Account,
        failed: Failed,
    ) -> None:
        self.name = "routed:stt"
        self.sample_rate = sample_rate
        self.run = run
        self._fallback = fallback
        self._account = account
        self._failed = failed
        self._audio = bytearray()
        self._inner: STTStream | None = None
        self._open_error: AllAttemptsFailedError | None = None
        self._committing = False
        self._closed = False
        self._settled = False
        self._started = time.perf_counter()
        self._opener = opening
        self._opening = asyncio.ensure_future(self._open(opening))

    @property
    def fed_seconds(self) -> float:
        return len(self._audio) / (2 * self.sample_rate)

    @property
    def partial(self) -> str:
        return self._inner.partial if self._inner is not None else ""

    def feed(self, pcm: bytes) -> None:
        if self._committing or self._closed or not pcm:
            return
        self._audio += pcm
        if self._inner is not None:
            self._inner.feed(pcm)

    async def _open(self, opening: Awaitable[STTStream]) -> None:
        try:
            inner = await opening
        except AllAttemptsFailedError as exc:
            self._open_error = exc  # the rest of the plan hears the turn at its commit
            return
        if self._closed:
            await inner.aclose()
            return
        inner.feed(bytes(self._audio))  # what came while it opened, then each frame as it comes
        self._inner = inner

    async def commit(self) -> Transcript:
        self._committing = True
        served, status = None, SegmentStatus.FAILED
        try:
            await self._opening
            transcript = await self._from_stream()
            if transcript is None:
                if self._open_error is not None and self._open_error.stopped:
                    raise self._open_error
                transcript = await self._fallback(await self._turn_audio())
            served, status = self.run.served, SegmentStatus.OK
            return transcript
        finally:
            await self._settle(served, status)

    async def _from_stream(self) -> Transcript | None:
        inner, served = self._inner, self.run.served
        if inner is None or served is None:
            return None
        try:
            return await inner.commit()
        except ProviderError as exc:
            await self._failed(served, exc)
            if not exc.fallback_eligible:
                raise
            return None
        finally:
            await inner.aclose()

    async def _turn_audio(self) -> bytes:
        pcm = bytes(self._audio)
        if self.sample_rate == STT_SAMPLE_RATE:
            return pcm
        resampler = Resampler(self.sample_rate, STT_SAMPLE_RATE)
        return await asyncio.to_thread(lambda: resampler.process(pcm) + resampler.flush())

    async def _settle(self, served: PlannedAttempt | None, status: SegmentStatus) -> None:
        if self._settled:
            return
        self._settled = True
        await self._account(served, status, self._started, self.fed_seconds if served else 0.0)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._opening.done():
            self._opening.cancel()
        with contextlib.suppress(BaseException):
            await self._opening
        if isinstance(self._opener, Coroutine):
            self._opener.close()  # cancelled before it ran: it is not left un-awaited
        if self._inner is not None:
            await self._inner.aclose()
        await self._settle(None, SegmentStatus.CANCELLED)
