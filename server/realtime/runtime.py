"""The process-wide voice state: internal engines, token signer, session limiter, metrics.

Built lazily on the first realtime request from the settings and kept in
`services.extras["voice"]`, and closed with the services (`aclose`). Tests and benchmarks put
their own there first (fake engines, an LLM of their choosing); production builds everything
from the org's connections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from providers.speech.base import STTEngine, TTSEngine
from server.accounts import Principal
from server.realtime.session_limit import SessionLimiter, make_session_limiter
from server.realtime.tokens import TokenSigner
from server.settings import Settings
from voice.config import SessionLimits
from voice.engines import Cloud, InternalEngines, stt_chain, tts_chain
from voice.latency import LatencyStats
from voice.llm import TurnLLM
from voice.turn import SessionContext

if TYPE_CHECKING:
    from server.services import Services

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
    internal: InternalEngines | None = None
    engines: EnginesFactory | None = None
    """Overrides building chains from the org's connections (tests, benchmarks)."""
    llm: LLMFactory | None = None
    """Overrides the routed LLM (tests, benchmarks)."""
    stats: LatencyStats = field(default_factory=LatencyStats)

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceRuntime:
        secret = settings.voice_token_secret
        return cls(
            signer=TokenSigner(
                secret.get_secret_value().encode() if secret else None, ttl=settings.voice_token_ttl_seconds
            ),
            sessions=make_session_limiter(settings.voice_max_sessions_per_key, settings.redis_url),
            limits=SessionLimits(max_buffer_seconds=settings.voice_max_buffer_seconds),
            max_frame_bytes=settings.voice_max_frame_bytes,
            max_session_seconds=settings.voice_max_session_seconds,
            default_silence_ms=settings.voice_silence_ms,
        )

    async def aclose(self) -> None:
        """Stop the session limiter's lease renewal and hand back this process's slots."""
        await self.sessions.aclose()

    async def engines_for(self, services: Services, principal: Principal) -> tuple[STTEngine, TTSEngine]:
        """The caller's STT and TTS chains: the org's voice connections, internal engines last."""
        if self.engines is not None:
            return self.engines(principal)
        internal = self.internal_engines(services.settings)
        gateway = services.gateway
        if gateway is None:
            return stt_chain(None, internal, None), tts_chain(None, internal, None)
        org = await gateway.router.org(principal.org_id)
        cloud = Cloud(gateway.upstream, gateway.registry.credential)
        return stt_chain(org, internal, cloud), tts_chain(org, internal, cloud)

    def internal_engines(self, settings: Settings) -> InternalEngines:
        if self.internal is None:
            self.internal = build_internal_engines(settings)
        return self.internal


def build_internal_engines(settings: Settings) -> InternalEngines:
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
    return InternalEngines(stt=stt, tts=EspeakTTS(voice=settings.voice_espeak_voice))


def voice_runtime(services: Services) -> VoiceRuntime:
    runtime = services.extras.get("voice")
    if not isinstance(runtime, VoiceRuntime):
        runtime = VoiceRuntime.from_settings(services.settings)
        services.extras["voice"] = runtime
    return runtime
