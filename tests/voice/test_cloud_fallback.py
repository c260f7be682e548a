"""Cloud engines inside the fallback composites, over real loopback HTTP.

The acceptance item: TTS on ElevenLabs failing with 429 or a 401 quota error falls back to
the next engine, and nothing falls back once ElevenLabs already produced audio for the
segment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.http import UpstreamClients
from tests.emulators import elevenlabs as el
from tests.emulators import openai_audio as oa
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CanaryCredential, Scenario, disconnect_after, slow_first_byte
from tests.voice.fakes import FakeSTT, FakeTTS
from voice.stt.elevenlabs import ElevenLabsSTT
from voice.stt.fallback import Attempt, FallbackSTT
from voice.stt.openai_audio import OpenAISTT
from voice.tts.elevenlabs import ElevenLabsTTS, ElevenLabsTTSOptions
from voice.tts.fallback import FallbackTTS

SPEECH = bytes(32000)


@pytest.fixture
def eleven() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


@pytest.fixture
def eleven_url(eleven: el.ElevenLabsEmulator) -> Iterator[str]:
    with ServedApp(eleven.app) as served:
        yield served.url


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as clients:
        yield clients


def chain(clients: UpstreamClients, url: str) -> tuple[FallbackTTS, ElevenLabsTTS, FakeTTS]:
    primary = ElevenLabsTTS(
        clients,
        base_url=url,
        credential=CanaryCredential(),
        name="elevenlabs:org",
        billing_source=BillingSource.BYOK,
        options=ElevenLabsTTSOptions(output_format="pcm_16000"),
    )
    backup = FakeTTS("internal:espeak", sample_rate=22050, billing_source=BillingSource.PLATFORM)
    return FallbackTTS([primary, backup], sample_rate=24000), primary, backup


async def speak(engine: FallbackTTS) -> bytes:
    return b"".join([chunk async for chunk in engine.synthesize("Your table is booked.")])


@pytest.mark.parametrize(
    ("scenario", "error_class"),
    [
        (el.too_many_concurrent(), ErrorClass.RATE_LIMIT),
        (el.system_busy(), ErrorClass.OVERLOADED),
        (el.quota_exceeded(), ErrorClass.QUOTA_EXHAUSTED),
        (el.invalid_api_key(), ErrorClass.AUTH),
        (el.server_error(), ErrorClass.SERVER_ERROR),
    ],
)
async def test_elevenlabs_failure_before_audio_falls_back(
    clients: UpstreamClients,
    eleven_url: str,
    eleven: el.ElevenLabsEmulator,
    scenario: Scenario,
    error_class: ErrorClass,
) -> None:
    eleven.recorder.script(scenario)
    tts, primary, backup = chain(clients, eleven_url)
    audio = await speak(tts)
    assert tts.last_served is backup
    assert tts.last_attempts == (Attempt("elevenlabs:org", error_class), Attempt("internal:espeak"))
    assert tts.billing_source is BillingSource.PLATFORM
    assert len(backup.state.calls) == 1
    # The backup's 22.05 kHz audio reaches the caller at the chain's 24 kHz.
    expected = len(backup.audio()) // 2 * 24000 / 22050
    assert len(audio) // 2 == pytest.approx(expected, rel=0.01)
    assert len(eleven.recorder.requests) == 1


async def test_no_fallback_once_elevenlabs_produced_audio(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(disconnect_after(2))
    tts, primary, backup = chain(clients, eleven_url)
    received: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in tts.synthesize("Your table is booked."):
            received.append(chunk)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert received
    assert backup.state.calls == []
    assert tts.last_served is primary
    assert tts.billing_source is BillingSource.BYOK
    assert tts.last_attempts == (Attempt("elevenlabs:org", ErrorClass.NETWORK),)


async def test_fail_fast_errors_do_not_fall_back(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.validation_error())
    tts, _, backup = chain(clients, eleven_url)
    with pytest.raises(ProviderError) as caught:
        await speak(tts)
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert backup.state.calls == []


async def test_healthy_elevenlabs_serves_and_is_resampled(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    tts, primary, backup = chain(clients, eleven_url)
    audio = np.frombuffer(await speak(tts), dtype="<i2")
    assert tts.last_served is primary and backup.state.calls == []
    assert len(audio) == pytest.approx(len(el.encode_tone("pcm_16000")) // 2 * 1.5, abs=8)
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 24000 / len(audio)
    assert abs(peak_hz - 440) < 10


async def test_slow_first_byte_falls_back_and_closes_the_upstream(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    # ElevenLabs would answer after a minute, and the engine's own deadlines are its defaults
    # (tens of seconds): only the chain's attempt timeout can produce this TIMEOUT and the
    # hang-up the emulator records.
    eleven.recorder.script(slow_first_byte(60.0))
    _, primary, backup = chain(clients, eleven_url)
    tts = FallbackTTS([primary, backup], sample_rate=24000, attempt_timeout=0.3)
    await speak(tts)
    assert tts.last_served is backup
    assert tts.last_attempts[0] == Attempt("elevenlabs:org", ErrorClass.TIMEOUT)
    assert await eleven.recorder.wait_disconnect(within=10)
    assert eleven.recorder.completed == 0


async def test_stt_falls_back_from_elevenlabs_quota_to_openai(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.quota_exceeded())
    openai_emulator = oa.OpenAIAudioEmulator()
    with ServedApp(openai_emulator.app) as openai_served:
        stt = FallbackSTT(
            [
                ElevenLabsSTT(
                    clients, base_url=eleven_url, credential=CanaryCredential(), name="elevenlabs:org"
                ),
                OpenAISTT(
                    clients,
                    base_url=openai_served.url + "/v1",
                    credential=CanaryCredential(),
                    name="openai:platform",
                    billing_source=BillingSource.PLATFORM,
                ),
            ]
        )
        transcript = await stt.transcribe(SPEECH)
    assert transcript.engine == "openai:platform"
    assert transcript.text == oa.DEFAULT_TRANSCRIPT
    assert stt.last_attempts == (
        Attempt("elevenlabs:org", ErrorClass.QUOTA_EXHAUSTED),
        Attempt("openai:platform"),
    )
    assert stt.billing_source is BillingSource.PLATFORM


async def test_stt_rate_limited_cloud_falls_back_to_offline(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.too_many_concurrent(retry_after=3))
    offline = FakeSTT("internal:pocketsphinx", text="offline words")
    stt = FallbackSTT([ElevenLabsSTT(clients, base_url=eleven_url, credential=CanaryCredential()), offline])
    transcript = await stt.transcribe(SPEECH)
    assert (transcript.engine, transcript.text) == ("internal:pocketsphinx", "offline words")
    assert stt.last_attempts[0].error_class is ErrorClass.RATE_LIMIT
