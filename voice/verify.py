"""`test_voice`: the verification probe for speech connections.

Synthesizes one short phrase with the connection's TTS and transcribes it with its STT.
It checks that both calls succeed on this key; it keeps neither the audio nor the text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from providers.adapters.base import Endpoint
from providers.contract import ErrorClass, WireProtocol
from providers.errors import ProviderError
from providers.http import UpstreamClients
from providers.probes import ProbeResult
from providers.speech.base import STTEngine, TTSEngine
from providers.speech.elevenlabs import ElevenLabsSTT, ElevenLabsTTS
from providers.speech.openai_audio import OpenAISTT, OpenAITTS
from voice.audio import resample

PHRASE = "Patchbay voice check."
MAX_AUDIO_BYTES = 16_000 * 2 * 5
"""Stop reading synthesized audio after five seconds at 16 kHz: the probe needs a sample, not a speech."""

EngineBuilder = Callable[[UpstreamClients, Endpoint], tuple[TTSEngine, STTEngine]]


def _elevenlabs(clients: UpstreamClients, e: Endpoint) -> tuple[TTSEngine, STTEngine]:
    return (
        ElevenLabsTTS(clients, base_url=e.base_url, credential=e.credential, name=e.label),
        ElevenLabsSTT(clients, base_url=e.base_url, credential=e.credential, name=e.label),
    )


def _openai_audio(clients: UpstreamClients, e: Endpoint) -> tuple[TTSEngine, STTEngine]:
    return (
        OpenAITTS(clients, base_url=e.base_url, credential=e.credential, name=e.label),
        OpenAISTT(clients, base_url=e.base_url, credential=e.credential, name=e.label),
    )


_ENGINES: dict[WireProtocol, EngineBuilder] = {
    WireProtocol.ELEVENLABS: _elevenlabs,
    WireProtocol.OPENAI_AUDIO: _openai_audio,
}


def voice_probe(clients: UpstreamClients) -> Callable[[Endpoint], Awaitable[ProbeResult]]:
    """A probe for `routing.verify.verify(..., extra_probes=...)`."""

    async def probe(endpoint: Endpoint) -> ProbeResult:
        return await test_voice(clients, endpoint)

    return probe


async def test_voice(clients: UpstreamClients, endpoint: Endpoint) -> ProbeResult:
    protocol = endpoint.preset.audio_protocol
    if protocol not in _ENGINES:
        return ProbeResult("test_voice", True, 0.0)
    tts, stt = _ENGINES[protocol](clients, endpoint)
    started = time.perf_counter()
    try:
        audio = bytearray()
        async for chunk in tts.synthesize(PHRASE):
            audio += chunk
            if len(audio) >= MAX_AUDIO_BYTES:
                break
        if not audio:
            raise ProviderError(ErrorClass.SERVER_ERROR, "the TTS returned no audio", provider=endpoint.label)
        await stt.transcribe(resample(bytes(audio), tts.sample_rate, 16_000))
    except ProviderError as exc:
        return ProbeResult("test_voice", False, (time.perf_counter() - started) * 1000, exc.error_class, exc.status, exc.message)
    return ProbeResult("test_voice", True, (time.perf_counter() - started) * 1000)

