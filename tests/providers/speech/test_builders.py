"""The speech builder tables: one engine per wire protocol, configured from a `SpeechTarget`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from providers.contract import PRESETS, BillingSource, WireProtocol
from providers.credentials import NoCredential
from providers.speech.builders import STT_BUILDERS, TTS_BUILDERS, SpeechTarget
from providers.speech.elevenlabs import ElevenLabsSTT, ElevenLabsTTS
from providers.speech.openai_audio import OpenAISTT, OpenAITTS
from providers.upstream_pool import UpstreamClients


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as clients:
        yield clients


def target(model: str | None = None) -> SpeechTarget:
    return SpeechTarget(
        "http://127.0.0.1:9/v1", NoCredential(), "speechbox:main", BillingSource.PRIVATE, model
    )


def test_every_cloud_audio_protocol_of_a_preset_has_both_builders() -> None:
    # The internal engines are offline models in voice/, never built from a connection.
    protocols = {
        p.audio_protocol for p in PRESETS.values() if p.audio_protocol not in (None, WireProtocol.INTERNAL)
    }
    assert (
        protocols
        == set(STT_BUILDERS)
        == set(TTS_BUILDERS)
        == {
            WireProtocol.ELEVENLABS,
            WireProtocol.OPENAI_AUDIO,
        }
    )


@pytest.mark.parametrize("rate", [16_000, 24_000])
async def test_tts_engines_yield_the_asked_rate(clients: UpstreamClients, rate: int) -> None:
    eleven = TTS_BUILDERS[WireProtocol.ELEVENLABS](clients, target(), rate)
    openai = TTS_BUILDERS[WireProtocol.OPENAI_AUDIO](clients, target(), rate)
    assert isinstance(eleven, ElevenLabsTTS) and eleven.options.output_format == f"pcm_{rate}"
    assert isinstance(openai, OpenAITTS) and openai.options.sample_rate == rate
    assert eleven.sample_rate == openai.sample_rate == rate


async def test_engines_carry_the_target_name_billing_and_model(clients: UpstreamClients) -> None:
    engines = [
        TTS_BUILDERS[WireProtocol.ELEVENLABS](clients, target("eleven_turbo_v2_5"), 24_000),
        TTS_BUILDERS[WireProtocol.OPENAI_AUDIO](clients, target("kokoro"), 24_000),
        STT_BUILDERS[WireProtocol.ELEVENLABS](clients, target("scribe_v2")),
        STT_BUILDERS[WireProtocol.OPENAI_AUDIO](clients, target("whisper-large-v3")),
    ]
    assert [(e.name, e.billing_source) for e in engines] == [("speechbox:main", BillingSource.PRIVATE)] * 4
    eleven_tts, openai_tts, eleven_stt, openai_stt = engines
    assert isinstance(eleven_tts, ElevenLabsTTS) and eleven_tts.options.model_id == "eleven_turbo_v2_5"
    assert isinstance(openai_tts, OpenAITTS) and openai_tts.options.model == "kokoro"
    assert isinstance(eleven_stt, ElevenLabsSTT) and eleven_stt.options.model_id == "scribe_v2"
    assert isinstance(openai_stt, OpenAISTT) and openai_stt.options.model == "whisper-large-v3"


async def test_no_model_means_the_engine_default(clients: UpstreamClients) -> None:
    stt = STT_BUILDERS[WireProtocol.OPENAI_AUDIO](clients, target())
    tts = TTS_BUILDERS[WireProtocol.ELEVENLABS](clients, target(), 24_000)
    assert isinstance(stt, OpenAISTT) and stt.options.model == "whisper-1"
    assert isinstance(tts, ElevenLabsTTS) and tts.options.model_id == "eleven_flash_v2_5"
