"""ElevenLabsTTS against the ElevenLabs emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.http import Timeouts
from providers.speech.elevenlabs import (
    ElevenLabsTTS,
    ElevenLabsTTSOptions,
    VoiceSettings,
    audio_format_for,
    tts_request_parts,
)
from providers.upstream_pool import UpstreamClients
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp, free_port
from tests.emulators.scripted import (
    CANARY_KEY,
    CanaryCredential,
    Scenario,
    disconnect_after,
    ok,
    slow_first_byte,
    stall_after,
    tone_pcm16,
)
from tests.providers.speech.cloud import cloud_engine


@pytest.fixture
def emulator() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


@pytest.fixture(params=["httpx", "aiohttp"])
async def each_backend(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients(backend=request.param) as clients:
        yield clients


def make_engine(clients: UpstreamClients, url: str, **options: object) -> ElevenLabsTTS:
    return cloud_engine(ElevenLabsTTS, clients, url, **options)


async def collect(engine: ElevenLabsTTS, text: str = "Hello there.", voice: str | None = None) -> list[bytes]:
    return [chunk async for chunk in engine.synthesize(text, voice=voice)]


async def test_yields_the_upstream_pcm_unchanged(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(ok(chunks=5))
    engine = make_engine(clients, served.url, output_format="pcm_22050")
    chunks = await collect(engine)
    assert engine.sample_rate == 22050
    assert all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == el.encode_tone("pcm_22050")


@pytest.mark.parametrize("output_format", ["ulaw_8000", "alaw_8000"])
async def test_g711_is_decoded_to_pcm16(
    clients: UpstreamClients, served: ServedApp, output_format: str
) -> None:
    engine = make_engine(clients, served.url, output_format=output_format)
    audio = np.frombuffer(b"".join(await collect(engine)), dtype="<i2").astype(np.float64)
    original = tone_pcm16(8000).astype(np.float64)
    assert engine.sample_rate == 8000
    assert len(audio) == len(original)
    snr = 10 * np.log10(np.sum(original**2) / np.sum((audio - original) ** 2))
    assert snr > 30, f"decoded {output_format} is not the tone (SNR {snr:.1f} dB)"


async def test_request_on_the_wire(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    credential = CanaryCredential()
    engine = ElevenLabsTTS(
        clients,
        base_url=served.url + "/",
        credential=credential,
        options=ElevenLabsTTSOptions(
            model_id="eleven_turbo_v2_5",
            output_format="pcm_24000",
            voice_settings=VoiceSettings(stability=0.4, similarity_boost=0.8),
            optimize_streaming_latency=2,
        ),
    )
    await collect(engine, "Good morning.", voice="my voice")
    (request,) = emulator.recorder.requests
    assert request.method == "POST"
    assert request.path == "/v1/text-to-speech/my voice/stream"
    assert request.query == {"output_format": "pcm_24000", "optimize_streaming_latency": "2"}
    assert request.headers["xi-api-key"] == CANARY_KEY
    assert "authorization" not in request.headers
    assert request.json == {
        "text": "Good morning.",
        "model_id": "eleven_turbo_v2_5",
        "voice_settings": {"stability": 0.4, "similarity_boost": 0.8},
    }
    assert credential.purposes == ["tts"]


async def test_blank_text_makes_no_request(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    assert await collect(make_engine(clients, served.url), "  \n") == []
    assert emulator.recorder.requests == []


async def test_audio_arrives_before_the_upstream_finishes_and_close_disconnects(
    each_backend: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(stall_after(2))
    stream = make_engine(each_backend, served.url).synthesize("A long sentence.")
    received = 0
    async with asyncio.timeout(5):
        while received < 2 * 3999:
            received += len(await anext(stream))
    assert emulator.recorder.completed == 0 and emulator.recorder.disconnects == 0
    # The emulator holds the stall for a minute and the engine's deadlines are its defaults
    # (tens of seconds): a disconnect within the guard can only be the close.
    await stream.aclose()  # type: ignore[attr-defined]
    assert await emulator.recorder.wait_disconnect(within=10)


async def test_cancelling_the_consumer_closes_the_upstream(
    each_backend: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(stall_after(1))
    first_audio = asyncio.Event()

    async def speak() -> None:
        async for _ in make_engine(each_backend, served.url).synthesize("Hello."):
            first_audio.set()

    task = asyncio.create_task(speak())
    async with asyncio.timeout(5):
        await first_audio.wait()
    assert emulator.recorder.disconnects == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await emulator.recorder.wait_disconnect(within=10)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (el.invalid_api_key(), ErrorClass.AUTH),
        (el.quota_exceeded(), ErrorClass.QUOTA_EXHAUSTED),
        (el.too_many_concurrent(retry_after=1), ErrorClass.RATE_LIMIT),
        (el.system_busy(), ErrorClass.OVERLOADED),
        (el.voice_not_found(), ErrorClass.NOT_FOUND),
        (el.validation_error(), ErrorClass.INVALID_REQUEST),
        (el.server_error(), ErrorClass.SERVER_ERROR),
        (el.echo_key_error(CANARY_KEY), ErrorClass.AUTH),
    ],
)
async def test_error_responses_raise_classified_errors_without_the_key(
    clients: UpstreamClients,
    served: ServedApp,
    emulator: el.ElevenLabsEmulator,
    scenario: Scenario,
    expected: ErrorClass,
) -> None:
    emulator.recorder.script(scenario)
    with pytest.raises(ProviderError) as caught:
        await collect(make_engine(clients, served.url))
    error = caught.value
    assert error.error_class is expected
    assert error.status == scenario.status
    assert error.provider == "elevenlabs:default"
    assert error.model == "eleven_flash_v2_5"
    assert error.__cause__ is None
    for text in (str(error), repr(error), error.message):
        assert "CANARY" not in text


async def test_missing_key_is_an_auth_error(clients: UpstreamClients, served: ServedApp) -> None:
    engine = ElevenLabsTTS(clients, base_url=served.url, credential=CanaryCredential(""))
    with pytest.raises(ProviderError) as caught:
        await collect(engine)
    assert caught.value.error_class is ErrorClass.AUTH
    assert caught.value.provider_code == "needs_authorization"


async def test_slow_first_byte_times_out(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    # The emulator holds the answer for two minutes, so the hang-up it records within the
    # guard below can only be the client's, after its own first-byte deadline.
    emulator.recorder.script(slow_first_byte(120.0))
    with pytest.raises(ProviderError) as caught:
        await collect(make_engine(clients, served.url, timeouts=Timeouts(first_byte=0.5)))
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert await emulator.recorder.wait_request(within=30)
    assert await emulator.recorder.wait_disconnect(within=30)


async def test_stall_mid_stream_times_out_after_partial_audio(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(stall_after(2))
    received: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in make_engine(clients, served.url, timeouts=Timeouts(between_chunks=0.3)).synthesize(
            "Hello."
        ):
            received.append(chunk)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert received, "audio before the stall must have been delivered"


async def test_disconnect_mid_stream_is_a_network_error_after_partial_audio(
    each_backend: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(disconnect_after(2))
    received: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in make_engine(each_backend, served.url).synthesize("Hello."):
            received.append(chunk)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert 0 < len(b"".join(received)) < len(el.encode_tone("pcm_16000"))


async def test_connection_refused_is_a_network_error(each_backend: UpstreamClients) -> None:
    engine = make_engine(each_backend, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError) as caught:
        await collect(engine)
    assert caught.value.error_class is ErrorClass.NETWORK


def test_request_parts_are_pure() -> None:
    options = ElevenLabsTTSOptions(output_format="ulaw_8000", language_code="de")
    path, query, body = tts_request_parts("Hallo", "abc", options)
    assert path == "/v1/text-to-speech/abc/stream"
    assert query == {"output_format": "ulaw_8000"}
    assert body == {"text": "Hallo", "model_id": "eleven_flash_v2_5", "language_code": "de"}


@pytest.mark.parametrize("bad", ["mp3_44100_128", "pcm_11025", "ulaw_16000", "opus_48000_64", ""])
def test_only_streamable_pcm_formats_are_accepted(bad: str) -> None:
    with pytest.raises(ValueError):
        audio_format_for(bad)
    with pytest.raises(ValueError):
        ElevenLabsTTSOptions(output_format=bad)


def test_option_bounds() -> None:
    with pytest.raises(ValueError):
        ElevenLabsTTSOptions(optimize_streaming_latency=5)
    assert audio_format_for("pcm_44100").sample_rate == 44100


async def test_no_key_or_text_in_any_log_record(
    clients: UpstreamClients,
    served: ServedApp,
    emulator: el.ElevenLabsEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.recorder.script(ok(), el.echo_key_error(CANARY_KEY))
    caplog.set_level(logging.DEBUG)
    engine = make_engine(clients, served.url)
    await collect(engine, "secret dinner plans")
    with pytest.raises(ProviderError):
        await collect(engine, "secret dinner plans")
    assert caplog.records, "the engine base logs each segment"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "CANARY" not in text
        assert "dinner" not in text
