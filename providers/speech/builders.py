"""Build a cloud speech engine for one connection, chosen by the connection's wire protocol.

`STT_BUILDERS` and `TTS_BUILDERS` map a `WireProtocol` to a function that builds an engine from
a `SpeechTarget` (the plain values of a resolved connection) and the process's pooled upstream
clients; a TTS builder also takes the rate the caller wants its PCM at. `STREAM_TTS_BUILDERS`
holds the protocols that can also speak a whole reply over one streamed connection
(`providers.speech.streaming`): having an entry is that provider's streaming capability. Callers (routing's
attempt runner, the voice chains, the verification probe) look the protocol up and never name
a vendor, so adding a speech provider adds a module and an entry here, never a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypedDict

from providers.contract import BillingSource, WireProtocol
from providers.credentials import Credential
from providers.speech.base import STTEngine, TTSEngine
from providers.speech.elevenlabs import (
    ElevenLabsSTT,
    ElevenLabsSTTOptions,
    ElevenLabsTTS,
    ElevenLabsTTSOptions,
)
from providers.speech.elevenlabs_realtime import ElevenLabsRealtimeOptions, ElevenLabsRealtimeSTT
from providers.speech.elevenlabs_realtime_wire import is_realtime_model
from providers.speech.elevenlabs_ws import ElevenLabsStreamTTS
from providers.speech.openai_audio import OpenAISTT, OpenAISTTOptions, OpenAITTS, OpenAITTSOptions
from providers.speech.streaming import StreamingTTS
from providers.speech.streaming_stt import StreamingSTT
from providers.upstream_pool import CheckedResolve, UpstreamClients


@dataclass(frozen=True, slots=True)
class SpeechTarget:
    """Where and as whom a speech engine calls, and which model; `None` means the engine's default."""

    base_url: str
    credential: Credential
    name: str
    """The auth-profile id (`provider:name`) the engine reports in errors, logs and attempts."""
    billing_source: BillingSource
    model: str | None = None
    resolve: CheckedResolve | None = None
    """Where a WebSocket engine may connect (`UpstreamClients.resolve_checked`); HTTP engines
    connect through their pool's own checked connector."""


STTBuilder = Callable[[UpstreamClients, SpeechTarget], STTEngine]
TTSBuilder = Callable[[UpstreamClients, SpeechTarget, int], TTSEngine]
"""(clients, target, output sample rate) → an engine yielding PCM16 at that rate."""
StreamTTSBuilder = Callable[[SpeechTarget, int], StreamingTTS]
"""(target, output sample rate) → an engine opening streams of PCM16 at that rate."""


@dataclass(frozen=True, slots=True)
class StreamSTTBuilder:
    """A protocol's streamed STT: which of its models stream, and the engine for one target."""

    streams: Callable[[str | None], bool]
    build: Callable[[SpeechTarget], StreamingSTT]


def _args(target: SpeechTarget) -> _Common:
    """What every cloud engine takes from its target, whatever its wire."""
    return {
        "base_url": target.base_url,
        "credential": target.credential,
        "name": target.name,
        "billing_source": target.billing_source,
    }


class _Common(TypedDict):
    base_url: str
    credential: Credential
    name: str
    billing_source: BillingSource


def _eleven_tts(clients: UpstreamClients, target: SpeechTarget, sample_rate: int) -> TTSEngine:
    # ElevenLabs streams PCM at the asked rate itself, so nothing is resampled on our side.
    options = ElevenLabsTTSOptions(output_format=f"pcm_{sample_rate}")
    options = replace(options, model_id=target.model) if target.model else options
    return ElevenLabsTTS(
        clients,
        options=options,
        **_args(target),
    )


def _eleven_tts_stream(target: SpeechTarget, sample_rate: int) -> StreamingTTS:
    options = ElevenLabsTTSOptions(output_format=f"pcm_{sample_rate}")
    options = replace(options, model_id=target.model) if target.model else options
    return ElevenLabsStreamTTS(options=options, resolve=target.resolve, **_args(target))


def _openai_tts(clients: UpstreamClients, target: SpeechTarget, sample_rate: int) -> TTSEngine:
    options = OpenAITTSOptions(sample_rate=sample_rate)
    options = replace(options, model=target.model) if target.model else options
    return OpenAITTS(
        clients,
        options=options,
        **_args(target),
    )


def _eleven_stt(clients: UpstreamClients, target: SpeechTarget) -> STTEngine:
    if is_realtime_model(target.model):
        return _eleven_realtime(target)
    options = ElevenLabsSTTOptions(model_id=target.model) if target.model else ElevenLabsSTTOptions()
    return ElevenLabsSTT(
        clients,
        options=options,
        **_args(target),
    )


def _eleven_realtime(target: SpeechTarget) -> ElevenLabsRealtimeSTT:
    options = (
        ElevenLabsRealtimeOptions(model_id=target.model) if target.model else ElevenLabsRealtimeOptions()
    )
    return ElevenLabsRealtimeSTT(options=options, resolve=target.resolve, **_args(target))


def _openai_stt(clients: UpstreamClients, target: SpeechTarget) -> STTEngine:
    options = OpenAISTTOptions(model=target.model) if target.model else OpenAISTTOptions()
    return OpenAISTT(
        clients,
        options=options,
        **_args(target),
    )


STT_BUILDERS: Mapping[WireProtocol, STTBuilder] = MappingProxyType(
    {WireProtocol.ELEVENLABS: _eleven_stt, WireProtocol.OPENAI_AUDIO: _openai_stt}
)
TTS_BUILDERS: Mapping[WireProtocol, TTSBuilder] = MappingProxyType(
    {WireProtocol.ELEVENLABS: _eleven_tts, WireProtocol.OPENAI_AUDIO: _openai_tts}
)
STREAM_TTS_BUILDERS: Mapping[WireProtocol, StreamTTSBuilder] = MappingProxyType(
    {WireProtocol.ELEVENLABS: _eleven_tts_stream}
)
STREAM_STT_BUILDERS: Mapping[WireProtocol, StreamSTTBuilder] = MappingProxyType(
    {WireProtocol.ELEVENLABS: StreamSTTBuilder(is_realtime_model, _eleven_realtime)}
)
