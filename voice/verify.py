"""`test_voice`: the verification probe for speech connections.

Synthesizes one short phrase with the connection's TTS and transcribes it with its STT.
It checks that both calls succeed on this key; it keeps neither the audio nor the text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from providers.adapters.base import Endpoint
from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.probes import ProbeResult
from providers.speech.base import STT_SAMPLE_RATE
from providers.speech.builders import STT_BUILDERS, TTS_BUILDERS, SpeechTarget
from providers.upstream_pool import UpstreamClients

PHRASE = "Patchbay voice check."
MAX_AUDIO_BYTES = STT_SAMPLE_RATE * 2 * 5
"""Stop reading synthesized audio after five seconds at 16 kHz: the probe needs a sample, not a speech."""


def voice_probe(clients: UpstreamClients) -> Callable[[Endpoint], Awaitable[ProbeResult]]:
    """A probe for `routing.verify.verify(..., extra_probes=...)`."""

    async def probe(endpoint: Endpoint) -> ProbeResult:
        return await test_voice(clients, endpoint)

    return probe


async def test_voice(clients: UpstreamClients, endpoint: Endpoint) -> ProbeResult:
    protocol = endpoint.preset.audio_protocol
    if protocol is None or protocol not in TTS_BUILDERS or protocol not in STT_BUILDERS:
        return ProbeResult("test_voice", True, 0.0)
    # The billing source is moot here: a probe's calls are not metered as a segment.
    target = SpeechTarget(
        endpoint.base_url,
        endpoint.credential,
        endpoint.label,
        BillingSource.BYOK,
        resolve=clients.resolve_checked,
    )
    # The TTS speaks at the STT's rate, so its audio goes straight back in.
    tts = TTS_BUILDERS[protocol](clients, target, STT_SAMPLE_RATE)
    stt = STT_BUILDERS[protocol](clients, target)
    started = time.perf_counter()
    try:
        audio = bytearray()
        async for chunk in tts.synthesize(PHRASE):
            audio += chunk
            if len(audio) >= MAX_AUDIO_BYTES:
                break
        if not audio:
            raise ProviderError(ErrorClass.SERVER_ERROR, "the TTS returned no audio", provider=endpoint.label)
        await stt.transcribe(bytes(audio))
    except ProviderError as exc:
        return ProbeResult(
            "test_voice",
            False,
            (time.perf_counter() - started) * 1000,
            exc.error_class,
            exc.status,
            exc.message,
        )
    return ProbeResult("test_voice", True, (time.perf_counter() - started) * 1000)
