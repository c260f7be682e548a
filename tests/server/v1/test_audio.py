"""`/v1/audio/transcriptions` and `/v1/audio/speech` through the official openai SDK and raw HTTP.

Engines are fakes injected into the process's voice runtime (the routing of voice chains is
tested in tests/voice/test_engines.py; the internal engines in tests/server/realtime).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import openai
import pytest
import soundfile
from sqlalchemy import select

from billing.tables import UsageRecord
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STTEngine, TTSEngine
from providers.speech.pcm import wav_bytes
from server.accounts import Principal
from tests.server.v1.conftest import Patchbay
from tests.voice.fakes import FakeSTT, FakeTTS, tone
from tests.voice.speech import speak
from voice.audio import encode_file


def install(patchbay: Patchbay, stt: STTEngine, tts: TTSEngine) -> None:
    def build(principal: Principal) -> tuple[STTEngine, TTSEngine]:
        return stt, tts

    patchbay.services.voice.engines = build


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


async def usage_rows(patchbay: Patchbay) -> list[UsageRecord]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        return list(await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id)))


async def test_transcription_with_the_sdk(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    stt = FakeSTT(text="what time is it")
    install(patchbay, stt, FakeTTS())
    audio = speak("What time is it?")
    result = await client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", wav_bytes(audio, 16_000), "audio/wav")
    )
    assert result.text == "what time is it"
    assert stt.calls[0].audio_bytes == len(audio)
    text = await client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", wav_bytes(audio, 16_000), "audio/wav"), response_format="text"
    )
    assert text.strip() == "what time is it"
    rows = await usage_rows(patchbay)
    assert [(r.segment, r.intent, r.billing_source) for r in rows] == [("stt", "stt", "platform")] * 2
    assert rows[0].audio_seconds == pytest.approx(len(audio) / 32_000, abs=0.01)


async def test_transcription_resamples_other_rates(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    stt = FakeSTT()
    install(patchbay, stt, FakeTTS())
    await client.audio.transcriptions.create(
        model="x", file=("a.wav", wav_bytes(bytes(48_000), 24_000), "audio/wav")
    )
    assert stt.calls[0].audio_bytes == pytest.approx(32_000, abs=64)  # 1 s at 16 kHz


async def test_transcription_takes_mp3(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    stt = FakeSTT()
    install(patchbay, stt, FakeTTS())
    mp3 = encode_file(tone(24_000, 1.0), 24_000, "mp3")
    await client.audio.transcriptions.create(model="x", file=("a.mp3", mp3, "audio/mpeg"))
    # mp3 frames pad the ends: about 1 s at 16 kHz.
    assert stt.calls[0].audio_bytes == pytest.approx(32_000, rel=0.1)


async def test_transcription_refuses_what_is_not_audio(
    patchbay: Patchbay, client: openai.AsyncOpenAI
) -> None:
    install(patchbay, FakeSTT(), FakeTTS())
    with pytest.raises(openai.BadRequestError) as caught:
        await client.audio.transcriptions.create(model="x", file=("a.wav", b"not audio at all", "audio/wav"))
    assert caught.value.code == "invalid_audio_format"


async def test_speech_streams_pcm_with_the_sdk(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    tts = FakeTTS(sample_rate=24_000)
    install(patchbay, FakeSTT(), tts)
    response = await client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello there.", response_format="pcm"
    )
    assert response.content == tts.audio()
    assert response.response.headers["x-patchbay-provider"] == "fake:tts"
    assert tts.state.calls[0].voice == "alloy"
    rows = await usage_rows(patchbay)
    assert [(r.segment, r.intent, r.characters, r.status) for r in rows] == [
        ("tts", "tts", len("Hello there."), "ok")
    ]


async def test_speech_as_wav(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    tts = FakeTTS(sample_rate=24_000)
    install(patchbay, FakeSTT(), tts)
    response = await client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hi.", response_format="wav"
    )
    samples, rate = soundfile.read(io.BytesIO(response.content), dtype="int16")
    assert rate == 24_000 and samples.tobytes() == tts.audio()


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [
        (None, "audio/mpeg", (b"\xff", b"ID3")),
        ("opus", "audio/ogg", (b"OggS",)),
        ("flac", "audio/flac", (b"fLaC",)),
    ],
    ids=["mp3-by-default", "opus", "flac"],
)
async def test_speech_as_a_compressed_file(
    patchbay: Patchbay,
    client: openai.AsyncOpenAI,
    fmt: str | None,
    content_type: str,
    magic: tuple[bytes, ...],
) -> None:
    """The SDK's default (no `response_format`) is mp3, as on OpenAI: a whole file that decodes."""
    tts = FakeTTS(sample_rate=24_000, chunks=10, chunk_ms=100)
    install(patchbay, FakeSTT(), tts)
    extra = {"response_format": fmt} if fmt else {}
    response = await client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", **extra)
    assert response.response.headers["content-type"] == content_type
    assert response.content.startswith(magic)
    samples, rate = soundfile.read(io.BytesIO(response.content), dtype="int16")
    # Lossy codecs pad and delay by a frame or two; the length is what was spoken.
    assert abs(len(samples) / rate - 1.0) < 0.1
    if fmt == "flac":
        assert rate == 24_000 and samples.tobytes() == tts.audio()
    rows = await usage_rows(patchbay)
    assert [(r.segment, r.status, round(r.audio_seconds, 2)) for r in rows] == [("tts", "ok", 1.0)]


async def test_encoded_speech_failing_midway_is_a_502_and_a_failed_segment(
    patchbay: Patchbay, client: openai.AsyncOpenAI
) -> None:
    failing = FakeTTS(
        chunks=5, fail_after=2, error=ProviderError(ErrorClass.SERVER_ERROR, "boom", provider="el")
    )
    install(patchbay, FakeSTT(), failing)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert failed.value.status_code == 502 and failed.value.code == "tts_unavailable"
    rows = await usage_rows(patchbay)
    assert [(r.segment, r.status) for r in rows] == [("tts", "failed")]


async def test_streamed_speech_failing_midway_ends_short_and_is_a_failed_segment(
    patchbay: Patchbay, client: openai.AsyncOpenAI
) -> None:
    failing = FakeTTS(
        chunks=5, fail_after=2, error=ProviderError(ErrorClass.SERVER_ERROR, "boom", provider="el")
    )
    install(patchbay, FakeSTT(), failing)
    response = await client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hi.", response_format="pcm"
    )
    assert response.content == failing.audio()[: 2 * len(failing.audio()) // 5]
    rows = await usage_rows(patchbay)
    assert [(r.segment, r.status) for r in rows] == [("tts", "failed")]


async def test_speech_refusals(patchbay: Patchbay, client: openai.AsyncOpenAI) -> None:
    install(patchbay, FakeSTT(), FakeTTS(error=ProviderError(ErrorClass.QUOTA_EXHAUSTED, "q", provider="el")))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="aac")
    assert caught.value.code == "unsupported_format" and "mp3" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        await client.audio.speech.create(model="tts-1", voice="alloy", input="")
    with pytest.raises(openai.APIStatusError) as failed:
        await client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="pcm")
    assert failed.value.status_code == 502
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key="pb-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
