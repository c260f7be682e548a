"""The official `openai` SDK as a client of the OpenAI audio emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from openai.types.audio import Transcription

from providers.speech.pcm import wav_bytes
from tests.emulators import openai_audio as oa
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CANARY_KEY, ok, tone_pcm16, unknown_fields

WAV = wav_bytes(tone_pcm16(16000).astype("<i2").tobytes(), 16000)


@pytest.fixture
def emulator() -> oa.OpenAIAudioEmulator:
    return oa.OpenAIAudioEmulator()


@pytest.fixture
def served(emulator: oa.OpenAIAudioEmulator) -> Iterator[ServedApp]:
    with ServedApp(emulator.app) as served:
        yield served


@pytest.fixture
async def sdk(served: ServedApp) -> AsyncIterator[openai.AsyncOpenAI]:
    async with httpx.AsyncClient() as http:
        yield openai.AsyncOpenAI(
            api_key=CANARY_KEY, base_url=served.url + "/v1", max_retries=0, http_client=http
        )


async def test_speech_streams_pcm(sdk: openai.AsyncOpenAI, emulator: oa.OpenAIAudioEmulator) -> None:
    async with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello.", response_format="pcm"
    ) as response:
        audio = b"".join([chunk async for chunk in response.iter_bytes()])
    assert audio == tone_pcm16(24000).astype("<i2").tobytes()
    request = emulator.recorder.requests[0]
    assert request.json == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": "Hello.",
        "response_format": "pcm",
    }


async def test_speech_wav_is_a_readable_file(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.audio.speech.create(model="tts-1", voice="nova", input="Hi.", response_format="wav")
    data = response.content
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert data[44:] == tone_pcm16(24000).astype("<i2").tobytes()


async def test_transcription_completes_and_validates(
    sdk: openai.AsyncOpenAI, emulator: oa.OpenAIAudioEmulator
) -> None:
    emulator.recorder.script(ok(transcript="hello world"))
    result = await sdk.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV, "audio/wav"))
    assert result.text == "hello world"
    assert emulator.recorder.requests[0].form["model"] == "whisper-1"


def test_transcription_answer_has_no_unknown_fields(served: ServedApp) -> None:
    response = httpx.post(
        f"{served.url}/v1/audio/transcriptions",
        headers={"authorization": f"Bearer {CANARY_KEY}"},
        data={"model": "whisper-1", "response_format": "json"},
        files={"file": ("a.wav", WAV, "audio/wav")},
    )
    parsed = Transcription.model_validate(response.json())
    assert unknown_fields(parsed) == []
    assert parsed.usage is not None and parsed.usage.type == "duration"


async def test_text_response_format(sdk: openai.AsyncOpenAI) -> None:
    text = await sdk.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", WAV, "audio/wav"), response_format="text"
    )
    assert str(text).strip() == "hello from the openai emulator"


@pytest.mark.parametrize(
    ("scenario", "error_type", "code"),
    [
        (oa.rate_limited(), openai.RateLimitError, "rate_limit_exceeded"),
        (oa.insufficient_quota(), openai.RateLimitError, "insufficient_quota"),
        (oa.invalid_api_key(), openai.AuthenticationError, "invalid_api_key"),
        (oa.bad_request(), openai.BadRequestError, "invalid_value"),
        (oa.overloaded(), openai.InternalServerError, "slow_down"),
    ],
)
async def test_errors_surface_as_sdk_errors(
    sdk: openai.AsyncOpenAI, emulator: oa.OpenAIAudioEmulator, scenario: object, error_type: type, code: str
) -> None:
    emulator.recorder.script(scenario)  # type: ignore[arg-type]
    with pytest.raises(error_type) as caught:
        await sdk.audio.speech.create(model="tts-1", voice="alloy", input="x", response_format="pcm")
    assert caught.value.code == code
    assert caught.value.request_id.startswith("req_")


async def test_models_list(sdk: openai.AsyncOpenAI) -> None:
    ids = [model.id async for model in sdk.models.list()]
    assert "whisper-1" in ids and "gpt-4o-mini-tts" in ids
