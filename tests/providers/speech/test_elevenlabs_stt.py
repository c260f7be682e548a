"""ElevenLabsSTT (Scribe batch) against the ElevenLabs emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.http import Timeouts
from providers.speech.elevenlabs import ElevenLabsSTT, ElevenLabsSTTOptions, parse_scribe, stt_form
from providers.upstream_pool import UpstreamClients
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp, free_port
from tests.emulators.scripted import CANARY_KEY, Scenario, ok, slow_first_byte
from tests.providers.speech.cloud import cloud_engine
from voice.audio import read_wav

SPEECH = (np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes()


@pytest.fixture
def emulator() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


def make_engine(clients: UpstreamClients, url: str, **options: object) -> ElevenLabsSTT:
    return cloud_engine(ElevenLabsSTT, clients, url, name="elevenlabs:org-key", **options)


async def test_transcribes_a_segment(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.recorder.script(ok(transcript=" book a table for two "))
    transcript = await make_engine(clients, served.url).transcribe(SPEECH)
    assert transcript.text == "book a table for two"
    assert transcript.engine == "elevenlabs:org-key"
    assert transcript.model == "scribe_v1"
    assert transcript.language == "eng"
    assert transcript.audio_seconds == pytest.approx(1.0)


async def test_upload_is_a_wav_of_the_segment(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    await make_engine(clients, served.url, model_id="scribe_v2").transcribe(SPEECH, language="de")
    (request,) = emulator.recorder.requests
    assert request.path == "/v1/speech-to-text"
    assert request.headers["xi-api-key"] == CANARY_KEY
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert request.form == {"model_id": "scribe_v2", "language_code": "de", "tag_audio_events": "false"}
    pcm, rate = read_wav(request.files["file"])
    assert (pcm, rate) == (SPEECH, 16000)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (el.invalid_api_key(), ErrorClass.AUTH),
        (el.quota_exceeded(), ErrorClass.QUOTA_EXHAUSTED),
        (el.too_many_concurrent(), ErrorClass.RATE_LIMIT),
        (el.system_busy(), ErrorClass.OVERLOADED),
        (el.validation_error("file"), ErrorClass.INVALID_REQUEST),
        (el.server_error(503), ErrorClass.OVERLOADED),
        (el.server_error(529), ErrorClass.OVERLOADED),
        (el.echo_key_error(CANARY_KEY), ErrorClass.AUTH),
    ],
)
async def test_errors_are_classified_without_the_key(
    clients: UpstreamClients,
    served: ServedApp,
    emulator: el.ElevenLabsEmulator,
    scenario: Scenario,
    expected: ErrorClass,
) -> None:
    emulator.recorder.script(scenario)
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, served.url).transcribe(SPEECH)
    assert caught.value.error_class is expected
    assert caught.value.provider == "elevenlabs:org-key"
    assert "CANARY" not in str(caught.value) + repr(caught.value)


async def test_slow_answer_times_out(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    # The emulator holds the answer for two minutes, so the hang-up it records within the
    # guard below can only be the client's, after its own first-byte deadline.
    emulator.recorder.script(slow_first_byte(120.0))
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, served.url, timeouts=Timeouts(first_byte=0.5)).transcribe(SPEECH)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert await emulator.recorder.wait_request(within=30)
    assert await emulator.recorder.wait_disconnect(within=30)


async def test_unreachable_is_a_network_error(clients: UpstreamClients) -> None:
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, f"http://127.0.0.1:{free_port()}").transcribe(SPEECH)
    assert caught.value.error_class is ErrorClass.NETWORK


async def test_half_a_sample_is_refused_before_any_request(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    with pytest.raises(ProviderError) as caught:
        await make_engine(clients, served.url).transcribe(b"\x00\x01\x02")
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert emulator.recorder.requests == []


def test_parse_scribe_keeps_text_and_language() -> None:
    body = json.dumps(
        {"language_code": "fra", "language_probability": 0.9, "text": "bonjour", "words": []}
    ).encode()
    transcript = parse_scribe(body, engine="e", model="scribe_v1", audio_seconds=1.5)
    assert (transcript.text, transcript.language, transcript.audio_seconds) == ("bonjour", "fra", 1.5)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"text": 3}', b"[]"])
def test_parse_scribe_rejects_other_shapes(body: bytes) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_scribe(body, engine="e", model="m", audio_seconds=1)
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


def test_form_fields() -> None:
    assert stt_form(ElevenLabsSTTOptions(tag_audio_events=True), None) == {
        "model_id": "scribe_v1",
        "tag_audio_events": "true",
    }
    with pytest.raises(ValueError):
        ElevenLabsSTTOptions(model_id="")


async def test_cancelling_a_transcription_closes_the_upstream(
    clients: UpstreamClients, served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    # The emulator answers only after a minute and the engine's deadlines are its defaults
    # (tens of seconds): a disconnect within the guard can only be the cancel.
    emulator.recorder.script(slow_first_byte(60.0))
    task = asyncio.create_task(make_engine(clients, served.url).transcribe(SPEECH))
    assert await emulator.recorder.wait_request(within=10)
    assert emulator.recorder.disconnects == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await emulator.recorder.wait_disconnect(within=10)
