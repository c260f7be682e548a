"""The process-wide voice state: internal engines, token signer, session limiter, metrics.

Built once by the composition root (`server.services.Services.build`, as `services.voice`) over
the routed API's gateway, and closed with the services. `engines_for` is the one place a
caller's STT and TTS chains come from; `llm_for` gives a session its LLM. Tests and benchmarks
replace the engines, the internal engines or the LLM through `server.services.Overrides`;
production builds everything from the org's connections.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from billing.turn_costs import TurnCosts
from providers.speech.base import STTEngine, TTSEngine
from routing.intents import Intent
from routing.routed_engines import RoutedSTT, RoutedTTS
from routing.router import CallContext
from routing.speech import BuiltIn, SpeechRouter
from server.accounts import Principal
from server.realtime.call_checkpoint import CallCheckpoints
from server.realtime.llm import RouterTurnLLM
from server.realtime.session_limit import RedisSessionLimiter, SessionLimiter, make_session_limiter
from server.realtime.tokens import TokenSigner
from server.settings import Settings
from server.v1.gateway import Gateway
from voice.config import SessionLimits
from voice.endpointing import TurnDetectionConfig
from voice.latency import LatencyStats
from voice.llm import TurnLLM
from voice.turn import SessionContext

log = logging.getLogger("patchbay.voice")
EnginesFactory = Callable[[Principal], tuple[STTEngine, TTSEngine]]
LLMFactory = Callable[[SessionContext], TurnLLM]


@dataclass
class VoiceRuntime:
    signer: TokenSigner
    sessions: SessionLimiter
    """Live sessions per API key: shared through Redis when configured, else this process's."""
    limits: SessionLimits
    max_frame_bytes: int
    max_session_seconds: float
    default_silence_ms: int
    settings: Settings
    gateway: Gateway
    """The routed API: its router answers turns, its pool and credentials serve cloud speech."""
    internal: BuiltIn | None = None
    """Built on first use (loading a Whisper model takes seconds); set up front to replace them."""
    engines: EnginesFactory | None = None
    """Replaces building chains from the org's connections (tests, benchmarks)."""
    llm: LLMFactory | None = None
    """Replaces the routed LLM (tests, benchmarks)."""
    stats: LatencyStats = field(default_factory=LatencyStats)
    checkpoints: CallCheckpoints | None = None
    """Writes phone calls' checkpoints (`PATCHBAY_TWILIO_CALL_CHECKPOINTS`); None: off."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        gateway: Gateway,
        *,
        internal: BuiltIn | None = None,
        engines: EnginesFactory | None = None,
        llm: LLMFactory | None = None,
        checkpoints: CallCheckpoints | None = None,
    ) -> VoiceRuntime:
        secret = settings.voice_token_secret
        sessions = make_session_limiter(settings.voice_max_sessions_per_key, settings.redis_url)
        if isinstance(sessions, RedisSessionLimiter):
            # Replacements announced by other processes arrive on the config subscription.
            gateway.registry.add_notice_listener(sessions)
        return cls(
            signer=TokenSigner(
                secret.get_secret_value().encode() if secret else None, ttl=settings.voice_token_ttl_seconds
            ),
            sessions=sessions,
            limits=SessionLimits(max_buffer_seconds=settings.voice_max_buffer_seconds),
            max_frame_bytes=settings.voice_max_frame_bytes,
            max_session_seconds=settings.voice_max_session_seconds,
            default_silence_ms=settings.voice_silence_ms,
            settings=settings,
            gateway=gateway,
            internal=internal,
            engines=engines,
            llm=llm,
            checkpoints=checkpoints,
        )

    @property
    def turn_detection(self) -> TurnDetectionConfig:
        """Server VAD as a session starts (`PATCHBAY_VOICE_SILENCE_MS` and the endpointing settings)."""
        settings = self.settings
        return TurnDetectionConfig(
            silence_duration_ms=self.default_silence_ms,
            sentence_silence_ms=settings.voice_silence_after_sentence_ms,
            continuation_silence_ms=settings.voice_silence_after_continuation_ms,
            partial_transcripts=settings.voice_partial_transcripts,
            speculative_reply=settings.voice_speculative_reply,
        )

    def internal_engine_names(self) -> dict[str, str]:
        """The built-in engines every speech chain ends with, without loading them: `stt`,
        `tts`, and `whisper_model` (`present` or `missing`) for /readyz and the UI."""
        if self.internal is not None:
            stt, tts = self.internal.stt.name, self.internal.tts.name
            whisper = "present" if stt == WHISPER else "missing"
            return {"stt": stt, "tts": tts, "whisper_model": whisper}
        return internal_engine_names(self.settings)

    async def aclose(self) -> None:
        """Stop the session limiter's lease renewal and hand back this process's slots, and
        stop writing calls' checkpoints."""
        await self.sessions.aclose()
        if self.checkpoints is not None:
            await self.checkpoints.aclose()

    async def engines_for(
        self,
        principal: Principal,
        *,
        request_id: str | None = None,
        intent: Intent | None = None,
        costs: TurnCosts | None = None,
    ) -> tuple[STTEngine, TTSEngine]:
        """The caller's STT and TTS: its agent's or org's speech chains, the built-in engines
        last, each segment run by the one attempt runner (`routing.speech`). `request_id` and
        `intent` go on the usage records (a session's id and `voice_turn` for live calls);
        `costs` hears what each segment was charged."""
        if self.engines is not None:
            return self.engines(principal)
        ctx = CallContext(
            org_id=principal.org_id,
            agent_id=principal.agent_id,
            api_key_id=principal.key_id,
            request_id=request_id,
            intent=intent,
            costs=costs,
        )
        return RoutedSTT(self.speech, ctx), RoutedTTS(self.speech, ctx)

    @functools.cached_property
    def speech(self) -> SpeechRouter:
        gateway = self.gateway
        return SpeechRouter(
            gateway.router,
            builtin=self.internal_engines,
            clients=gateway.upstream,
            credentials=gateway.registry.credential,
            guard=gateway.router.executor.guard,
            streaming=self.settings.voice_tts_streaming,
        )

    def llm_for(self, context: SessionContext, *, costs: TurnCosts | None = None) -> TurnLLM:
        """The session's LLM: the router (intent `voice_turn`), unless replaced. `costs` hears
        what each turn's LLM segment was charged."""
        if self.llm is not None:
            return self.llm(context)
        gateway = self.gateway
        return RouterTurnLLM(
            gateway.router, context, limiter=gateway.rate_limiter, log=gateway.request_log, costs=costs
        )

    def internal_engines(self) -> BuiltIn:
        if self.internal is None:
            self.internal = build_internal_engines(self.settings)
        return self.internal


WHISPER = "internal:whisper"
POCKETSPHINX = "internal:pocketsphinx"


def internal_engine_names(settings: Settings) -> dict[str, str]:
    """Which built-in engines `build_internal_engines` would build (a look at the model directory)."""
    from voice.models import is_model_dir, whisper_model_dir

    present = is_model_dir(whisper_model_dir(settings.data_dir, settings.voice_whisper_model_dir))
    return {
        "stt": WHISPER if present else POCKETSPHINX,
        "tts": "internal:espeak",
        "whisper_model": "present" if present else "missing",
    }


def warn_if_whisper_missing(settings: Settings) -> None:
    """At start: say so when the internal STT will be pocketsphinx (several times Whisper's WER)."""
    from voice.models import whisper_model_dir

    if internal_engine_names(settings)["whisper_model"] == "missing":
        log.warning(
            "no Whisper model: the internal STT is pocketsphinx, with several times Whisper's word "
            "error rate; assemble the model with `python -m voice.models` "
            "(or set PATCHBAY_VOICE_WHISPER_MODEL_DIR)",
            extra={
                "fields": {
                    "model_dir": str(whisper_model_dir(settings.data_dir, settings.voice_whisper_model_dir))
                }
            },
        )


def build_internal_engines(settings: Settings) -> BuiltIn:
    """espeak-ng for TTS; Whisper when its model directory is there, else pocketsphinx."""
    from voice.models import is_model_dir, whisper_model_dir
    from voice.tts.espeak import EspeakTTS

    stt: STTEngine
    model_dir = whisper_model_dir(settings.data_dir, settings.voice_whisper_model_dir)
    if is_model_dir(model_dir):
        from voice.stt.whisper import WhisperSTT

        stt = WhisperSTT(model_dir)
    else:
        from voice.stt.pocketsphinx import PocketsphinxSTT

        stt = PocketsphinxSTT()
    return BuiltIn(stt=stt, tts=EspeakTTS(voice=settings.voice_espeak_voice))
