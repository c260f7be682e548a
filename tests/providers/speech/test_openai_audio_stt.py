"""OpenAISTT against the OpenAI audio emulator over real loopback HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.http import Timeouts
from providers.speech.openai_audio import OpenAISTT, OpenAISTTOptions, parse_transcription, transcription_form
from providers.upstream_pool import UpstreamClients
from tests.emulators import openai_audio as oa
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CANARY_KEY, Scenario, ok, slow_first_byte
from tests.providers.speech.cloud import cloud_engine
from voice.audio import read_wav

SPEECH = (np.sin(np.arange(8000) / 7) * 6000).astype("<i2").tobytes()


@pytest.fixture
def emulator() -> oa.OpenAIAudioEmulator:
    return oa.OpenAIAudioEmulator()


def make_engine(clients: UpstreamClients, url: str, **options: object) -> OpenAISTT:
    return cloud_engine(OpenAISTT, clients, url + "/v1", **options)


async def test_transcribes_and_uploads_a_wav(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    emulator.recorder.script(ok(transcript="Two coffees, please."))
    transcript = await make_engine(clients, served.url, prompt="coffee shop").transcribe(
        SPEECH, language="en"
    )
    assert transcript.text == "Two coffees, please."
    assert (transcript.engine, transcript.model, transcript.language) == ("openai:default", "whisper-1", "en")
    assert transcript.audio_seconds == pytest.approx(0.5)
    (request,) = emulator.recorder.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert request.form == {
        "model": "whisper-1",
        "response_format": "json",
        "language": "en",
        "prompt": "coffee shop",
    }
    assert read_wav(request.files["file"]) == (SPEECH, 16000)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (oa.invalid_api_key(CANARY_KEY), ErrorClass.AUTH),
        (oa.insufficient_quota(), ErrorClass.QUOTA_EXHAUSTED),
        (oa.rate_limited(retry_after=4), ErrorClass.RATE_LIMIT),
        (oa.bad_request("file"), ErrorClass.INVALID_REQUEST),
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
        await make_engine(clients, served.url).transcribe(SPEECH)
    assert caught.value.error_class is expected
    assert "CANARY" not in str(caught.value) + repr(caught.value)


async def test_rate_limit_keeps_retry_after(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    emulator.recorder.script(oa.rate_limited(retry_after=4))
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, served.url).transcribe(SPEECH)
    assert caught.value.retry_after == 4.0
    assert caught.value.provider_code == "rate_limit_exceeded"


async def test_slow_answer_times_out(
    clients: UpstreamClients, served: ServedApp, emulator: oa.OpenAIAudioEmulator
) -> None:
    emulator.recorder.script(slow_first_byte(5.0))
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, served.url, timeouts=Timeouts(first_byte=0.2)).transcribe(SPEECH)
    assert caught.value.error_class is ErrorClass.TIMEOUT


def test_parse_transcription() -> None:
    body = json.dumps({"text": " hi ", "usage": {"type": "duration", "seconds": 1}}).encode()
    transcript = parse_transcription(body, engine="e", model="m", audio_seconds=1.0, language=None)
    assert (transcript.text, transcript.language) == ("hi", None)
    verbose = json.dumps({"text": "hola", "language": "spanish"}).encode()
    assert (
        parse_transcription(verbose, engine="e", model="m", audio_seconds=1, language="es").language
        == "spanish"
    )
    with pytest.raises(ProviderError) as caught:
        parse_transcription(b"hi\n", engine="e", model="m", audio_seconds=1, language=None)
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


def test_form_without_optional_fields() -> None:
    assert transcription_form(OpenAISTTOptions(model="gpt-4o-mini-transcribe"), None) == {
        "model": "gpt-4o-mini-transcribe",
        "response_format": "json",
    }
