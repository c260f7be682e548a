"""Build an org's STT and TTS fallback chains from its connections.

Order, first to last:
1. the refs of the org's routing matrix for the intent (`stt` / `tts`), e.g.
   `elevenlabs/eleven_flash_v2_5` or `my-speech-server/kokoro`: every active connection
   (auth profile) of that provider, in the org's profile order;
2. with no matrix entry, the org's active ElevenLabs connections (an org that added an
   ElevenLabs key wants its voices); an OpenAI chat key is not used for audio unless the
   matrix names it, so adding a chat key never changes who speaks;
3. the internal offline engines, always last, so a session never loses its voice.

With no keys at all the chain is just the internal engines. Adding a provider adds an
entry to `_TTS_BUILDERS` / `_STT_BUILDERS`, never a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypedDict

from providers.contract import PRESETS, BillingSource, ModelRef, ProviderId, WireProtocol
from providers.credentials import Credential
from providers.http import UpstreamClients
from providers.speech.base import STTEngine, TTSEngine
from providers.speech.elevenlabs import (
    ElevenLabsSTT,
    ElevenLabsSTTOptions,
    ElevenLabsTTS,
    ElevenLabsTTSOptions,
)
from providers.speech.openai_audio import OpenAISTT, OpenAISTTOptions, OpenAITTS, OpenAITTSOptions
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


def _args(cloud: Cloud, conn: ConnectionView) -> _Common:
    """What every cloud engine takes from its connection."""
    return {
        "base_url": conn.base_url or PRESETS[conn.provider].base_url,
        "credential": cloud.credentials(conn),
        "name": conn.profile_id,
        "billing_source": conn.billing_source,
    }


class _Common(TypedDict):
    base_url: str
    credential: Credential
    name: str
    billing_source: BillingSource


def _eleven_tts(cloud: Cloud, conn: ConnectionView, model: str | None) -> TTSEngine:
    options = ElevenLabsTTSOptions(output_format=f"pcm_{OUTPUT_RATE}")
    options = replace(options, model_id=model) if model else options
    return ElevenLabsTTS(cloud.clients, options=options, **_args(cloud, conn))


def _openai_tts(cloud: Cloud, conn: ConnectionView, model: str | None) -> TTSEngine:
    options = OpenAITTSOptions(model=model) if model else OpenAITTSOptions()
    return OpenAITTS(cloud.clients, options=options, **_args(cloud, conn))


def _eleven_stt(cloud: Cloud, conn: ConnectionView, model: str | None) -> STTEngine:
    options = ElevenLabsSTTOptions(model_id=model) if model else ElevenLabsSTTOptions()
    return ElevenLabsSTT(cloud.clients, options=options, **_args(cloud, conn))


def _openai_stt(cloud: Cloud, conn: ConnectionView, model: str | None) -> STTEngine:
    options = OpenAISTTOptions(model=model) if model else OpenAISTTOptions()
    return OpenAISTT(cloud.clients, options=options, **_args(cloud, conn))


_TTS_BUILDERS: Mapping[WireProtocol, Callable[[Cloud, ConnectionView, str | None], TTSEngine]] = (
    MappingProxyType({WireProtocol.ELEVENLABS: _eleven_tts, WireProtocol.OPENAI_AUDIO: _openai_tts})
)
_STT_BUILDERS: Mapping[WireProtocol, Callable[[Cloud, ConnectionView, str | None], STTEngine]] = (
    MappingProxyType({WireProtocol.ELEVENLABS: _eleven_stt, WireProtocol.OPENAI_AUDIO: _openai_stt})
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
            builder = _TTS_BUILDERS.get(
                PRESETS[conn.provider].audio_protocol or PRESETS[conn.provider].protocol
            )
            if builder is not None:
                engines.append(builder(cloud, conn, model))
    engines.append(internal.tts)
    return FallbackTTS(engines, sample_rate=OUTPUT_RATE, attempt_timeout=5.0)


def stt_chain(org: OrgRouting | None, internal: InternalEngines, cloud: Cloud | None) -> STTEngine:
    engines: list[STTEngine] = []
    if cloud is not None:
        for conn, model in voice_connections(org, Intent.STT):
            builder = _STT_BUILDERS.get(
                PRESETS[conn.provider].audio_protocol or PRESETS[conn.provider].protocol
            )
            if builder is not None:
                engines.append(builder(cloud, conn, model))
    engines.append(internal.stt)
    return FallbackSTT(engines, attempt_timeout=30.0)
