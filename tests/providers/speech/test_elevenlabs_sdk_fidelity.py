"""The official `elevenlabs` SDK as a client of the ElevenLabs emulator.

If the real SDK completes its calls against the emulator, parses its answers into its own
types with no unknown fields, and surfaces scripted errors as its own `ApiError`s, then the
emulator speaks the wire our engines are tested against.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pydantic
import pytest
from elevenlabs import AsyncElevenLabs, ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import GetVoicesResponse, Model, SpeechToTextChunkResponseModel, User, VoiceSettings

from providers.speech.pcm import wav_bytes
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CANARY_KEY, ok, unknown_fields

NO_RETRY: Any = {"max_retries": 0}
WAV = wav_bytes(el.encode_tone("pcm_16000"), 16000)


@pytest.fixture
def emulator() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


@pytest.fixture
def served(emulator: el.ElevenLabsEmulator) -> Iterator[ServedApp]:
    with ServedApp(emulator.app) as served:
        yield served


@pytest.fixture
async def sdk(served: ServedApp) -> AsyncIterator[AsyncElevenLabs]:
    async with httpx.AsyncClient(base_url=served.url) as http:
        yield AsyncElevenLabs(api_key=CANARY_KEY, base_url=served.url, httpx_client=http)


async def test_async_sdk_streams_tts(
    sdk: AsyncElevenLabs, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(ok(chunks=6))
    chunks = [
        chunk
        async for chunk in sdk.text_to_speech.stream(
            "21m00Tcm4TlvDq8ikWAM",
            text="Streaming through the SDK.",
            model_id="eleven_flash_v2_5",
            output_format="pcm_16000",
            voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.75, speed=1.1),
            request_options=NO_RETRY,
        )
    ]
    assert b"".join(chunks) == el.encode_tone("pcm_16000")
    (request,) = emulator.recorder.requests
    assert request.headers["xi-api-key"] == CANARY_KEY
    assert request.path == "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream"
    assert request.json["voice_settings"] == {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.1}


def test_sync_sdk_converts_tts(served: ServedApp, emulator: el.ElevenLabsEmulator) -> None:
    with httpx.Client() as http:
        client = ElevenLabs(api_key=CANARY_KEY, base_url=served.url, httpx_client=http)
        audio = b"".join(
            client.text_to_speech.convert(
                "21m00Tcm4TlvDq8ikWAM",
                text="Whole file.",
                output_format="ulaw_8000",
                request_options=NO_RETRY,
            )
        )
    assert audio == el.encode_tone("ulaw_8000")
    assert emulator.recorder.requests[0].path == "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM"


async def test_async_sdk_transcribes(
    sdk: AsyncElevenLabs, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(ok(transcript="the quick brown fox"))
    result = await sdk.speech_to_text.convert(
        model_id="scribe_v1", file=("clip.wav", WAV, "audio/wav"), request_options=NO_RETRY
    )
    assert isinstance(result, SpeechToTextChunkResponseModel)
    assert result.text == "the quick brown fox"
    assert [w.text for w in result.words if w.type == "word"] == ["the", "quick", "brown", "fox"]
    assert emulator.recorder.requests[0].form["model_id"] == "scribe_v1"


def test_stt_answer_validates_strictly_with_no_unknown_fields(served: ServedApp) -> None:
    response = httpx.post(
        f"{served.url}/v1/speech-to-text",
        headers={"xi-api-key": CANARY_KEY},
        data={"model_id": "scribe_v1"},
        files={"file": ("clip.wav", WAV, "audio/wav")},
    )
    assert response.status_code == 200
    parsed = SpeechToTextChunkResponseModel.model_validate(response.json())
    assert unknown_fields(parsed) == []
    assert parsed.audio_duration_secs == pytest.approx(0.5)
    assert parsed.words[-1].end is not None and parsed.words[-1].end <= 0.5


@pytest.mark.parametrize(("path", "model"), [("/v1/user", User), ("/v1/voices", GetVoicesResponse)])
def test_account_answers_validate_with_no_unknown_fields(
    served: ServedApp, path: str, model: type[pydantic.BaseModel]
) -> None:
    response = httpx.get(served.url + path, headers={"xi-api-key": CANARY_KEY})
    assert response.status_code == 200
    assert unknown_fields(model.model_validate(response.json())) == []


def test_models_answer_validates(served: ServedApp) -> None:
    response = httpx.get(served.url + "/v1/models", headers={"xi-api-key": CANARY_KEY})
    models = pydantic.TypeAdapter(list[Model]).validate_python(response.json())
    assert unknown_fields(models) == []
    assert "eleven_flash_v2_5" in {m.model_id for m in models}


async def test_sdk_account_calls(sdk: AsyncElevenLabs, served: ServedApp) -> None:
    user = await sdk.user.get(request_options=NO_RETRY)
    assert user.subscription.character_limit == 100000
    voices = await sdk.voices.get_all(request_options=NO_RETRY)
    assert voices.voices[0].voice_id == "21m00Tcm4TlvDq8ikWAM"
    models = await sdk.models.list(request_options=NO_RETRY)
    assert models[0].model_id == "eleven_flash_v2_5"


@pytest.mark.parametrize(
    ("scenario", "status", "code"),
    [
        (el.quota_exceeded(), 401, "quota_exceeded"),
        (el.invalid_api_key(), 401, "invalid_api_key"),
        (el.too_many_concurrent(), 429, "too_many_concurrent_requests"),
        (el.system_busy(), 429, "system_busy"),
    ],
)
async def test_scripted_errors_surface_as_sdk_api_errors(
    sdk: AsyncElevenLabs,
    served: ServedApp,
    emulator: el.ElevenLabsEmulator,
    scenario: Any,
    status: int,
    code: str,
) -> None:
    emulator.recorder.script(scenario)
    with pytest.raises(ApiError) as caught:
        async for _ in sdk.text_to_speech.stream(
            "21m00Tcm4TlvDq8ikWAM", text="x", output_format="pcm_16000", request_options=NO_RETRY
        ):
            pass
    assert caught.value.status_code == status
    assert caught.value.body["detail"]["status"] == code
    headers = caught.value.headers or {}
    assert headers["maximum-concurrent-requests"] == str(el.MAX_CONCURRENT)
    assert "current-concurrent-requests" in headers


async def test_validation_errors_surface_as_unprocessable_entity(
    sdk: AsyncElevenLabs, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(el.validation_error("file"))
    with pytest.raises(UnprocessableEntityError) as caught:
        await sdk.speech_to_text.convert(model_id="scribe_v1", file=("a.wav", WAV), request_options=NO_RETRY)
    assert caught.value.status_code == 422
    assert caught.value.body["detail"][0]["loc"] == ["body", "file"]


def test_emulator_rejects_fields_the_sdk_cannot_send(served: ServedApp) -> None:
    response = httpx.post(
        f"{served.url}/v1/text-to-speech/x/stream",
        headers={"xi-api-key": CANARY_KEY},
        content=json.dumps({"text": "hi", "model": "eleven_flash_v2_5"}),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "model"]
