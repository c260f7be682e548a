"""Speech segments as modalities of the attempt runner: an STT or TTS segment is planned,
held, attempted, cooled down and settled exactly like a chat call.

Where a speech chain comes from, first match wins (docs/routing.md#speech-chains):
1. the chain of the agent bound to the caller's key for the intent (`stt` / `tts`);
2. the org's routing matrix for the intent;
3. with neither, the org's ElevenLabs connections with their default models (an org that
   added an ElevenLabs key wants its voices; a chat key never changes who speaks);
and the built-in offline engine always last, the floor that keeps a session's voice.

Candidates are filtered by the resolver (status, tier, capability, cooldown) with chat's skip reasons,
so a connection whose key was refused (401 disables the profile) is not called again until its window
ends or its key is replaced, in this session, in new ones and, with Redis, on every replica. Cloud
engines come from `providers.speech.builders`; a new provider adds a builder, never a branch here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from billing.preflight import Hold, InsufficientCreditsError, PreflightRequest
from billing.usage import Segment, SegmentStatus
from providers.contract import PRESETS, Capability, CredentialSource, ModelRef, ProviderId
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript, TTSEngine
from providers.speech.builders import STT_BUILDERS, TTS_BUILDERS, SpeechTarget
from providers.speech.caller import speaking_for
from providers.speech.pcm import Resampler
from providers.speech.streaming import TTSStream
from providers.speech.streaming_stt import STTStream
from providers.upstream_pool import UpstreamClients
from routing.catalog import ModelInfo, price_for
from routing.errors import AllAttemptsFailedError, NoRouteError
from routing.executor import EndpointGuard, admit, log_trace
from routing.intents import Intent
from routing.model import ConnectionStatus, ConnectionView, OrgRouting
from routing.resolver import ChainChoice, Plan, PlannedAttempt, RouteRequest
from routing.router import CallContext, Router
from routing.runner import NO_RETRY, AttemptRunner, Attempts, Open, Run, skipped
from routing.speech_stream import RoutedTTSStream, open_tts_stream, stream_plan
from routing.speech_stt_stream import RoutedSTTStream, open_stt_stream, split_stt_plan
from routing.trace import AttemptTrace, TraceEntry

Credentials = Callable[[ConnectionView], Credential]

DEFAULT_MODELS: dict[tuple[ProviderId, Intent], str] = {
    (ProviderId.ELEVENLABS, Intent.STT): "scribe_v1",
    (ProviderId.ELEVENLABS, Intent.TTS): "eleven_flash_v2_5",
}
"""The models of an org's ElevenLabs connections when no chain names any (the SDK defaults)."""

OUTPUT_RATE = 24_000
"""A TTS segment comes out at this rate whichever engine speaks: the Realtime PCM rate, and
8 kHz G.711 is an exact third of it. Cloud engines are asked for it; others are resampled."""

STREAM_HOLD_CHARACTERS = 500
"""What a streamed reply holds up front: about 125 tokens of text, half a minute of speech, more
than a spoken reply of a few sentences runs to. A longer reply settles what it sent, beyond the hold
(the ledger records any shortfall); docs/billing.md, Voice."""

STT_STREAM_HOLD_SECONDS = 30.0
"""What a streamed turn holds up front: its length is known only at its end, and a caller's turn
is seldom longer (a longer one settles what it streamed, beyond the hold)."""


@dataclass(frozen=True, slots=True)
class SpeechTimeouts:
    """How long an engine may take before the next one is tried."""

    stt_attempt: float = 30.0
    """For a whole transcript (one segment is at most a few tens of seconds of speech)."""
    tts_first_audio: float = 5.0
    """Until a sentence's first audio; once it speaks, it may take as long as it speaks."""
    stt_stream_open: float = 5.0
    """Until a streamed STT session is open (connected and started by the provider)."""


@dataclass(frozen=True, slots=True)
class BuiltIn:
    """The process's offline engines, the floor of every speech chain (a loaded Whisper model
    is shared by every session)."""

    stt: STTEngine
    tts: TTSEngine


def builtin_attempt(org_id: str, engine: STTEngine | TTSEngine, intent: Intent, step: int) -> PlannedAttempt:
    """A built-in engine as the last attempt of a plan (`internal/whisper`, `internal/espeak`)."""
    name = engine.name.partition(":")[2] or engine.name
    conn = ConnectionView(
        connection_id="",
        org_id=org_id,
        provider=ProviderId.INTERNAL,
        name=name,
        base_url=None,
        status=ConnectionStatus.ACTIVE,
        position=0,
        credential_source=CredentialSource.PLATFORM_KEY,
        billing_source=engine.billing_source,
    )
    info = ModelInfo(
        provider=ProviderId.INTERNAL,
        id=name,
        capabilities=frozenset({Capability(intent.value)}),
        source="builtin",
    )
    return PlannedAttempt(
        ref=ModelRef(ProviderId.INTERNAL.value, name), connection=conn, info=info, step=step
    )


def default_chain(org: OrgRouting, intent: Intent) -> tuple[ModelRef, ...]:
    """With no chain configured: the org's ElevenLabs connections, with their default model."""
    model = DEFAULT_MODELS.get((ProviderId.ELEVENLABS, intent))
    if model is None or not org.profiles.get(ProviderId.ELEVENLABS):
        return ()
    return (ModelRef(ProviderId.ELEVENLABS.value, model),)


class SpeechRouter:
    """Plans and runs STT and TTS segments through the one attempt runner.

    `builtin` is called when a plan first needs the offline engines (loading Whisper is not
    free, and a process serving only chat never needs it). `clients` is None where no cloud
    engine may be built (then the built-in engines serve alone). `streaming` lets a reply
    whose first TTS candidate can stream speak over one connection (`open_stream`); off, every
    reply is spoken per sentence.
    """

    def __init__(
        self,
        router: Router,
        *,
        builtin: Callable[[], BuiltIn],
        clients: UpstreamClients | None,
        credentials: Credentials,
        guard: EndpointGuard | None = None,
        timeouts: SpeechTimeouts | None = None,
        streaming: bool = True,
    ) -> None:
        self._router = router
        self.streaming = streaming
        self._timeouts = timeouts or SpeechTimeouts()
        self._builtin = builtin
        self._clients = clients
        self._credentials = credentials
        self._guard = guard

    @property
    def runner(self) -> AttemptRunner:
        return self._router.executor.runner

    async def plan(self, org: OrgRouting, intent: Intent, agent: str | None) -> Plan:
        """The resolver's plan for the agent's or the org's chain, the built-in engine last."""
        resolver, runner = self._router.resolver, self.runner
        route = RouteRequest(intent=intent, agent=agent)
        try:
            choice = resolver.select(org, route)
        except NoRouteError:
            choice = ChainChoice(chain=default_chain(org, intent), source="default", strict=False)
        states = await runner.store.get_many(org.org_id, resolver.profiles_for(org, choice.chain))
        plan = resolver.plan(org, route, states, runner.clock.time(), choice)
        builtin = self._builtin()
        engine: STTEngine | TTSEngine = builtin.stt if intent is Intent.STT else builtin.tts
        floor = builtin_attempt(org.org_id, engine, intent, len(choice.chain))
        return Plan(intent=intent, source=plan.source, strict=False, items=(*plan.items, floor))

    async def _plan(self, ctx: CallContext, intent: Intent) -> tuple[OrgRouting, Plan]:
        entry = await self._router.entry(ctx.org_id)
        agent = entry.agent_names.get(ctx.agent_id) if ctx.agent_id else None
        return entry.routing, await self.plan(entry.routing, intent, agent)

    async def _hold(
        self,
        ctx: CallContext,
        org: OrgRouting,
        plan: Plan,
        intent: Intent,
        *,
        audio_seconds: float | None = 0.0,
        characters: int = 0,
    ) -> Hold:
        return await self._router.preflight.hold(
            PreflightRequest(
                org_id=ctx.org_id,
                tier=org.tier,
                segment=intent.value,
                intent=intent.value,
                offers=tuple((a.billing_source, price_for(a.info)) for a in plan.attempts),
                request_id=ctx.request_id or ctx.turn_id,
                api_key_id=ctx.api_key_id,
                audio_seconds=audio_seconds,
                characters=characters,
                enforce=org.flag("billing_enforcement"),
            )
        )

    async def _begin(
        self, ctx: CallContext, intent: Intent, *, audio_seconds: float | None = 0.0, characters: int = 0
    ) -> tuple[OrgRouting, Plan, Hold]:
        org, plan = await self._plan(ctx, intent)
        hold = await self._hold(ctx, org, plan, intent, audio_seconds=audio_seconds, characters=characters)
        return org, plan, hold

    async def open_stream(
        self, ctx: CallContext, *, voice: str | None, run: Run | None = None
    ) -> TTSStream | None:
        """A whole reply's TTS over one streamed connection, as one segment (recorded when the
        stream is closed); None when streaming is off, the chain's first candidate cannot
        stream, or no stream-capable candidate opened (speak per sentence then)."""
        if not self.streaming or self._clients is None:
            return None
        org, full = await self._plan(ctx, Intent.TTS)
        plan = stream_plan(full)
        if plan is None:
            return None
        try:
            # One reply's worth of characters up front, as the per-sentence path holds each
            # sentence before it is spoken; credits that cannot cover it speak per sentence,
            # whose holds refuse exactly where the credits end.
            hold = await self._hold(
                ctx, org, plan, Intent.TTS, audio_seconds=None, characters=STREAM_HOLD_CHARACTERS
            )
        except InsufficientCreditsError:
            return None
        run = run or Run(AttemptTrace(intent=Intent.TTS.value))
        started = time.perf_counter()

        async def admit(attempt: PlannedAttempt) -> SpeechTarget | TraceEntry:
            return await self._target(attempt)

        try:
            stream = await open_tts_stream(
                self.runner,
                plan,
                run,
                admit=admit,
                output_rate=OUTPUT_RATE,
                voice=voice,
                open_within=self._timeouts.tts_first_audio,
            )
        except BaseException:
            await hold.release()
            raise
        finally:
            log_trace(org, run.trace)
        if stream is None:
            await self._router.account(
                ctx, Segment.TTS, ctx.intent or Intent.TTS, None, SegmentStatus.FAILED, started, hold
            )
            return None
        served = run.served
        assert served is not None

        async def account(
            attempt: PlannedAttempt | None,
            status: SegmentStatus,
            began: float,
            characters: int,
            seconds: float,
        ) -> int:
            return await self._router.account(
                ctx,
                Segment.TTS,
                ctx.intent or Intent.TTS,
                attempt,
                status,
                began,
                hold,
                characters=characters,
                audio_seconds=seconds,
            )

        async def failed(error: ProviderError) -> None:
            await self.runner.failed_late(run, served, error)
            log_trace(org, run.trace)

        return RoutedTTSStream(stream, served, account, failed)

    async def open_stt_stream(
        self,
        ctx: CallContext,
        *,
        sample_rate: int,
        language: str | None,
        run: Run | None = None,
        settled: Callable[[Run], None] | None = None,
    ) -> STTStream | None:
        """A turn's STT streamed while the caller speaks, as one segment
        (`routing.speech_stt_stream`); None when the chain's first candidate cannot stream or
        the credits cannot hold a turn (transcribe the turn's audio at its end then).
        `settled(run)` is called once the segment is recorded."""
        if self._clients is None:
            return None
        org, full = await self._plan(ctx, Intent.STT)
        split = split_stt_plan(full)
        if split is None:
            return None
        lead, rest = split
        try:
            hold = await self._hold(ctx, org, full, Intent.STT, audio_seconds=STT_STREAM_HOLD_SECONDS)
        except InsufficientCreditsError:
            return None
        run = run or Run(AttemptTrace(intent=Intent.STT.value))

        async def fallback(pcm16_16k: bytes) -> Transcript:
            with speaking_for(ctx.api_key_id):
                attempts = self._stt_attempts(pcm16_16k, language)
                async with contextlib.aclosing(self.runner.run(rest, run, attempts)) as results:
                    async for transcript in results:
                        return transcript
            raise AssertionError("a served STT attempt yields its transcript")

        async def account(
            served: PlannedAttempt | None, status: SegmentStatus, began: float, seconds: float
        ) -> None:
            intent = ctx.intent or Intent.STT
            await self._router.account(
                ctx, Segment.STT, intent, served, status, began, hold, audio_seconds=seconds
            )
            log_trace(org, run.trace)
            if settled is not None:
                settled(run)

        async def failed(attempt: PlannedAttempt, error: ProviderError) -> None:
            await self.runner.failed_late(run, attempt, error)

        opening = open_stt_stream(
            self.runner,
            lead,
            run,
            admit=self._target,
            sample_rate=sample_rate,
            language=language,
            open_within=self._timeouts.stt_stream_open,
        )
        return RoutedSTTStream(
            sample_rate=sample_rate,
            run=run,
            opening=opening,
            fallback=fallback,
            account=account,
            failed=failed,
        )

    async def prefetch(
        self, ctx: CallContext, pcm16_16k: bytes, *, language: str | None, previous: str | None = None
    ) -> str | None:
        """A speculative decode (`STTEngine.prefetch`), only where the segment's first attempt
        would be the built-in engine: it is unbilled, so it never goes to a cloud engine, and
        it is wasted CPU where a cloud engine will serve the turn."""
        entry = await self._router.entry(ctx.org_id)
        agent = entry.agent_names.get(ctx.agent_id) if ctx.agent_id else None
        attempts = (await self.plan(entry.routing, Intent.STT, agent)).attempts
        if not attempts or attempts[0].connection.provider is not ProviderId.INTERNAL:
            return None
        with speaking_for(ctx.api_key_id):
            return await self._builtin().stt.prefetch(pcm16_16k, language=language, previous=previous)

    async def transcribe(
        self, ctx: CallContext, pcm16_16k: bytes, *, language: str | None, run: Run | None = None
    ) -> Transcript:
        """One STT segment; raises `AllAttemptsFailedError` when no engine served it."""
        seconds = len(pcm16_16k) / (2 * STT_SAMPLE_RATE)
        org, plan, hold = await self._begin(ctx, Intent.STT, audio_seconds=seconds)
        run = run or Run(AttemptTrace(intent=Intent.STT.value))
        started = time.perf_counter()
        status = SegmentStatus.FAILED
        try:
            attempts = self._stt_attempts(pcm16_16k, language)
            # The built-in engines are shared by every tenant; they share their CPU per key.
            with speaking_for(ctx.api_key_id):
                async with contextlib.aclosing(self.runner.run(plan, run, attempts)) as results:
                    async for transcript in results:
                        status = SegmentStatus.OK
                        return transcript
            raise AssertionError("a served STT attempt yields its transcript")
        finally:
            seconds = len(pcm16_16k) / (2 * STT_SAMPLE_RATE)
            await self._router.account(
                ctx,
                Segment.STT,
                ctx.intent or Intent.STT,
                run.served,
                status,
                started,
                hold,
                audio_seconds=seconds,
            )
            log_trace(org, run.trace)

    async def synthesize(
        self, ctx: CallContext, text: str, *, voice: str | None, run: Run | None = None
    ) -> AsyncGenerator[bytes, None]:
        """One TTS segment as PCM16 chunks at `OUTPUT_RATE`. `run` (optional) shows the trace and
        the serving attempt while it goes. Close the generator to stop early (billed as cancelled)."""
        org, plan, hold = await self._begin(ctx, Intent.TTS, audio_seconds=None, characters=len(text))
        run = run or Run(AttemptTrace(intent=Intent.TTS.value))
        started = time.perf_counter()
        status = SegmentStatus.CANCELLED
        produced = 0
        chunks = self.runner.run(plan, run, self._tts_attempts(text, voice))
        try:
            async for chunk in chunks:
                produced += len(chunk)
                yield chunk
            status = SegmentStatus.OK
        except (ProviderError, AllAttemptsFailedError):
            status = SegmentStatus.FAILED
            raise
        finally:
            await chunks.aclose()
            await self._router.account(
                ctx,
                Segment.TTS,
                ctx.intent or Intent.TTS,
                run.served,
                status,
                started,
                hold,
                characters=len(text) if produced else 0,
                audio_seconds=produced / (2 * OUTPUT_RATE),
            )
            log_trace(org, run.trace)

    async def tier(self, org_id: str) -> str:
        """The org's tier, from its routing snapshot (memory)."""
        return (await self._router.entry(org_id)).routing.tier

    def _stt_attempts(self, pcm16_16k: bytes, language: str | None) -> Attempts[Transcript]:
        async def prepare(attempt: PlannedAttempt) -> Open[Transcript] | TraceEntry:
            engine = await self._engine(attempt, Intent.STT)
            if isinstance(engine, TraceEntry):
                return engine
            assert isinstance(engine, STTEngine)
            stt = engine

            async def one() -> AsyncIterator[Transcript]:
                yield await stt.transcribe(pcm16_16k, language=language)

            return one

        return Attempts(prepare, _always, first_output_timeout=self._timeouts.stt_attempt, retry=NO_RETRY)

    def _tts_attempts(self, text: str, voice: str | None) -> Attempts[bytes]:
        async def prepare(attempt: PlannedAttempt) -> Open[bytes] | TraceEntry:
            engine = await self._engine(attempt, Intent.TTS)
            if isinstance(engine, TraceEntry):
                return engine
            assert isinstance(engine, TTSEngine)
            tts = engine
            return lambda: _at_output_rate(tts, text, voice)

        return Attempts(prepare, _always, first_output_timeout=self._timeouts.tts_first_audio, retry=NO_RETRY)

    async def _engine(self, attempt: PlannedAttempt, intent: Intent) -> STTEngine | TTSEngine | TraceEntry:
        """The engine for one attempt: the built-in one, or a cloud engine from its builder."""
        conn = attempt.connection
        if conn.provider is ProviderId.INTERNAL:
            builtin = self._builtin()
            return builtin.stt if intent is Intent.STT else builtin.tts
        preset = PRESETS[conn.provider]
        protocol = preset.audio_protocol or preset.protocol
        builders = STT_BUILDERS if intent is Intent.STT else TTS_BUILDERS
        if protocol not in builders or self._clients is None:
            return skipped(attempt, f"no_adapter:{protocol.value}")
        target = await self._target(attempt)
        if isinstance(target, TraceEntry):
            return target
        if intent is Intent.STT:
            return STT_BUILDERS[protocol](self._clients, target)
        return TTS_BUILDERS[protocol](self._clients, target, OUTPUT_RATE)

    async def _target(self, attempt: PlannedAttempt) -> SpeechTarget | TraceEntry:
        """Where and as whom the attempt calls, once its base URL and credential pass `admit`."""
        conn = attempt.connection
        credential = await admit(self._guard, self._credentials, attempt)
        if isinstance(credential, TraceEntry):
            return credential
        return SpeechTarget(
            base_url=conn.base_url or PRESETS[conn.provider].base_url,
            credential=credential,
            name=conn.profile_id,
            billing_source=conn.billing_source,
            model=attempt.model,
            resolve=self._clients.resolve_checked if self._clients is not None else None,
        )


async def _at_output_rate(tts: TTSEngine, text: str, voice: str | None) -> AsyncIterator[bytes]:
    """The engine's audio at `OUTPUT_RATE`; only non-empty chunks, so any chunk is output."""
    chunks = tts.synthesize(text, voice=voice)
    if tts.sample_rate == OUTPUT_RATE:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk
        return
    resampler = Resampler(tts.sample_rate, OUTPUT_RATE)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            out = resampler.process(chunk)
            if out:
                yield out
    tail = resampler.flush()
    if tail:
        yield tail


def _always(_: object) -> bool:
    return True
