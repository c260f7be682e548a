"""Build an org's STT and TTS fallback chains from its connections.

Order, first to last:
1. the refs of the org's routing matrix for the intent (`stt` / `tts`), e.g.
   `elevenlabs/eleven_flash_v2_5` or `my-speech-server/kokoro`: every active connection
   (auth profile) of that provider, in the org's profile order;
2. with no matrix entry, the org's active ElevenLabs connections (an org that added an
   ElevenLabs key wants its voices); an OpenAI chat key is not used for audio unless the
   matrix names it, so adding a chat key never changes who speaks;
3. the internal offline engines, always last, so a session never loses its voice.

With no keys at all the chain is just the internal engines. The cloud engines come from
providers.speech.builders by wire protocol: adding a provider adds an entry there, never a
branch here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from providers.contract import PRESETS, ModelRef, ProviderId
from providers.credentials import Credential
from providers.http import UpstreamClients
from providers.speech.base import STTEngine, TTSEngine
from providers.speech.builders import STT_BUILDERS, TTS_BUILDERS, SpeechTarget
from routing.intents import Intent
from routing.model import ConnectionStatus, ConnectionView, OrgRouting
from voice.stt.fallback import FallbackSTT
from voice.tts.fallback import FallbackTTS

Credentials = Callable[[ConnectionView], Credential]
OUTPUT_RATE = 24_000
"""TTS chains yield 24 kHz: the Realtime PCM rate, and 8 kHz G.711 is an exact third of it."""


@dataclass(frozen=True, slots=True)
class Cloud:
    """What building a cloud engine needs: the HTTP pool and how to get a connection's key."""

    clients: UpstreamClients
    credentials: Credentials


@dataclass(frozen=True, slots=True)
class InternalEngines:
    """The process-wide offline engines (a loaded Whisper model is shared by every session)."""

    stt: STTEngine
    tts: TTSEngine


def _target(cloud: Cloud, conn: ConnectionView, model: str | None) -> SpeechTarget:
    """What a speech builder takes from a connection."""
    return SpeechTarget(
        base_url=conn.base_url or PRESETS[conn.provider].base_url,
        credential=cloud.credentials(conn),
        name=conn.profile_id,
        billing_source=conn.billing_source,
        model=model,
    )


def voice_connections(org: OrgRouting | None, intent: Intent) -> list[tuple[ConnectionView, str | None]]:
    """(connection, model or None) for the intent, in chain order, internal engines excluded."""
    if org is None:
        return []
    chosen: list[tuple[ConnectionView, str | None]] = []
    refs: Sequence[ModelRef] = org.matrix.get(intent, ())
    if refs:
        for ref in refs:
            for conn in _connections_for(org, ref.provider):
                chosen.append((conn, ref.model))
    else:
        chosen = [(conn, None) for conn in org.profiles.get(ProviderId.ELEVENLABS, ())]
    role = intent.value
    return [
        (conn, model)
        for conn, model in chosen
        if conn.status is ConnectionStatus.ACTIVE
        and conn.provider is not ProviderId.INTERNAL
        and role in {r.value for r in PRESETS[conn.provider].voice_roles}
    ]


def _connections_for(org: OrgRouting, provider: str) -> tuple[ConnectionView, ...]:
    custom = org.custom.get(provider.lower())
    if custom is not None:
        return (custom,)
    try:
        return org.profiles.get(ProviderId(provider), ())
    except ValueError:
        return ()


def tts_chain(org: OrgRouting | None, internal: InternalEngines, cloud: Cloud | None) -> TTSEngine:
    engines: list[TTSEngine] = []
    if cloud is not None:
        for conn, model in voice_connections(org, Intent.TTS):
            builder = TTS_BUILDERS.get(
                PRESETS[conn.provider].audio_protocol or PRESETS[conn.provider].protocol
            )
            if builder is not None:
                engines.append(builder(cloud.clients, _target(cloud, conn, model), OUTPUT_RATE))
    engines.append(internal.tts)
    return FallbackTTS(engines, sample_rate=OUTPUT_RATE, attempt_timeout=5.0)


def stt_chain(org: OrgRouting | None, internal: InternalEngines, cloud: Cloud | None) -> STTEngine:
    engines: list[STTEngine] = []
    if cloud is not None:
        for conn, model in voice_connections(org, Intent.STT):
            builder = STT_BUILDERS.get(
                PRESETS[conn.provider].audio_protocol or PRESETS[conn.provider].protocol
            )
            if builder is not None:
                engines.append(builder(cloud.clients, _target(cloud, conn, model)))
    engines.append(internal.stt)
    return FallbackSTT(engines, attempt_timeout=30.0)
