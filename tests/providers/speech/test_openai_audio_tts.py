"""OpenAITTS against the OpenAI audio emulator over real loopback HTTP, and its WAV parser."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from providers.contract import BillingSource, ErrorClass
from providers.credentials import NoCredential
from providers.errors import ProviderError
from providers.http import Timeouts
from providers.speech.audio_bound import audio_bound_bytes
from providers.speech.openai_audio import (
    OpenAITTS,
    OpenAITTSOptions,
    WavStreamError,
    WavStreamParser,
    speech_body,
    stereo_to_mono,
)
from providers.upstream_pool import UpstreamClients
from tests.emulators import openai_audio as oa
from tests.emulators.harness import EndlessBody, ServedApp
from tests.emulators.scripted import (
    CANARY_KEY,
    Scenario,
    disconnect_after,
    slow_first_byte,
    stall_after,
    tone_pcm16,
)
from tests.providers.speech.cloud import cloud_engine

TONE_24K = tone_pcm16(24000).astype("<i2").tobytes()


@pytest.fixture
def emulator() -> oa.OpenAIAudioEmulator:
    return oa.OpenAIAudioEmulator()


def make_engine(clients: UpstreamClients, url: str, **options: object) -> OpenAITTS:
    return cloud_engine(OpenAITTS, clients, url + "/v1", **options)


async def collect(engine: OpenAITTS, text: str = "Hello there.") -> bytes:
    return b"".join([chunk async for chunk in engine.synthesize(text)])


async def test_pcm_is_streamed_unchanged(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    engine = make_engine(clients, served.url)
    assert engine.sample_rate == 24000
    assert await collect(engine, "Hi.") == TONE_24K
    (request,) = emulator.recorder.requests
    assert request.path == "/v1/audio/speech"
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert request.json == {
        "model": "gpt-4o-mini-tts",
        "input": "Hi.",
        "voice": "alloy",
        "response_format": "pcm",
    }


async def test_pcm_resampled_to_the_engine_rate(clients: UpstreamClients, served: ServedApp) -> None:
    audio = await collect(make_engine(clients, served.url, sample_rate=16000))
    assert len(audio) // 2 == pytest.approx(len(TONE_24K) // 2 * 2 / 3, abs=8)


async def test_wav_header_is_stripped(clients: UpstreamClients, served: ServedApp) -> None:
    assert await collect(make_engine(clients, served.url, response_format="wav")) == TONE_24K


async def test_stereo_16k_wav_is_mixed_and_resampled() -> None:
    emulator = oa.OpenAIAudioEmulator(wav_rate=16000, wav_channels=2)
    with ServedApp(emulator.app) as served:
        async with UpstreamClients() as clients:
            audio = await collect(make_engine(clients, served.url, response_format="wav", sample_rate=24000))
    samples = np.frombuffer(audio, dtype="<i2")
    assert len(samples) == pytest.approx(8000 * 1.5, abs=8)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 24000 / len(samples)
    assert abs(peak_hz - 440) < 10


async def test_keyless_server_gets_no_authorization(
    served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    async with UpstreamClients() as clients:
        engine = OpenAITTS(
            clients,
            base_url=served.url + "/v1",
            credential=NoCredential(),
            name="openai_compatible:kokoro",
            billing_source=BillingSource.PRIVATE,
        )
        with pytest.raises(ProviderError) as caught:
            await collect(engine)
    assert "authorization" not in emulator.recorder.requests[0].headers
    assert caught.value.error_class is ErrorClass.AUTH


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (oa.invalid_api_key(CANARY_KEY), ErrorClass.AUTH),
        (oa.insufficient_quota(), ErrorClass.QUOTA_EXHAUSTED),
        (oa.rate_limited(), ErrorClass.RATE_LIMIT),
        (oa.model_not_found(), ErrorClass.NOT_FOUND),
        (oa.bad_request(), ErrorClass.INVALID_REQUEST),
        (oa.server_error(), ErrorClass.SERVER_ERROR),
        (oa.overloaded(), ErrorClass.OVERLOADED),
    ],
)
async def test_errors_are_classified_without_the_key(
    clients: UpstreamClients,
    served: ServedApp,
    emulator: oa.OpenAIAudioEmulator,
    scenario: Scenario,
    expected: ErrorClass,
) -> None:
    emulator.recorder.script(scenario)
    with pytest.raises(ProviderError) as caught:
        await collect(make_engine(clients, served.url))
    assert caught.value.error_class is expected
    assert caught.value.model == "gpt-4o-mini-tts"
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert "CANARY" not in str(caught.value) + repr(caught.value)


async def test_close_mid_stream_disconnects(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    # The emulator holds the stall for a minute and the engine's deadlines are its defaults
    # (tens of seconds): a disconnect within the guard can only be the close.
    emulator.recorder.script(stall_after(1))
    stream = make_engine(clients, served.url).synthesize("A long one.")
    async with asyncio.timeout(5):
        assert await anext(stream)
    assert emulator.recorder.disconnects == 0
    await stream.aclose()  # type: ignore[attr-defined]
    assert await emulator.recorder.wait_disconnect(within=10)


async def test_timeouts_and_drops(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    emulator.recorder.script(slow_first_byte(5.0), stall_after(1), disconnect_after(1))
    fast = Timeouts(first_byte=0.2, between_chunks=0.2)
    for expected in (ErrorClass.TIMEOUT, ErrorClass.TIMEOUT, ErrorClass.NETWORK):
        with pytest.raises(ProviderError) as caught:
            await collect(make_engine(clients, served.url, timeouts=fast))
        assert caught.value.error_class is expected


def test_speech_body() -> None:
    options = OpenAITTSOptions(model="tts-1", response_format="wav", speed=1.25, instructions="calm")
    assert speech_body("x", "nova", options) == {
        "model": "tts-1",
        "input": "x",
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.25,
        "instructions": "calm",
    }
    with pytest.raises(ValueError):
        OpenAITTSOptions(response_format="mp3")  # type: ignore[arg-type]


def test_wav_parser_handles_any_split_and_extra_chunks() -> None:
    pcm = tone_pcm16(16000, seconds=0.01).astype("<i2").tobytes()
    header = oa.streaming_wav_header(16000)
    # A LIST chunk before data, as some encoders write.
    wav = header[:36] + b"LIST" + (6).to_bytes(4, "little") + b"INFOab" + header[36:] + pcm
    for step in (1, 3, 7, 44, len(wav)):
        parser = WavStreamParser()
        out = b"".join(parser.feed(wav[i : i + step]) for i in range(0, len(wav), step))
        assert out == pcm
        assert (parser.sample_rate, parser.channels) == (16000, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"ID3\x04" + bytes(40),
        b"RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff" + bytes(8),
        b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x03\x00\x01\x00\x80>\x00\x00\x00\xfa\x00\x00\x04\x00 \x00",
    ],
)
def test_wav_parser_rejects_what_it_cannot_stream(data: bytes) -> None:
    with pytest.raises(WavStreamError):
        WavStreamParser().feed(data)


def test_stereo_to_mono_averages_frames() -> None:
    stereo = np.array([100, 300, -10, -20], dtype="<i2").tobytes()
    assert np.frombuffer(stereo_to_mono(stereo), dtype="<i2").tolist() == [200, -15]


async def test_speech_that_never_ends_is_cut_off_and_the_connection_dropped(clients: UpstreamClients) -> None:
    app = EndlessBody(b"audio/pcm", TONE_24K[:4800], 2_000)  # 100 ms a write, 200 s in all
    text = "Hi."
    bound = audio_bound_bytes(len(text), 24_000)
    with ServedApp(app) as served:
        received = 0
        with pytest.raises(ProviderError) as caught:
            async for chunk in make_engine(clients, served.url).synthesize(text):
                received += len(chunk)
        assert caught.value.error_class is ErrorClass.SERVER_ERROR
        assert "3 characters" in caught.value.message
        assert 0 < received <= bound
        assert await asyncio.to_thread(app.hung_up.wait, 10)  # not left with the rest unread
