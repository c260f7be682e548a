"""OpenAI-compatible audio error bodies → ProviderError (pure; providers/speech/errors.py)."""

from __future__ import annotations

import json

import pytest

from providers.contract import ErrorClass
from providers.speech.errors import multipart, openai_audio_error
from tests.emulators import openai_audio as oa
from tests.emulators.scripted import CANARY_KEY, Scenario


def classify(scenario: Scenario, secrets: tuple[str, ...] = ()):
    return openai_audio_error(
        scenario.status, scenario.headers, scenario.body, provider="openai:test", secrets=secrets
    )


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (oa.invalid_api_key(), ErrorClass.AUTH),
        (oa.insufficient_quota(), ErrorClass.QUOTA_EXHAUSTED),
        (oa.rate_limited(), ErrorClass.RATE_LIMIT),
        (oa.model_not_found(), ErrorClass.NOT_FOUND),
        (oa.bad_request(), ErrorClass.INVALID_REQUEST),
        (oa.server_error(), ErrorClass.SERVER_ERROR),
        (oa.overloaded(), ErrorClass.OVERLOADED),
    ],
)
def test_openai_errors(scenario: Scenario, expected: ErrorClass) -> None:
    error = classify(scenario)
    assert error.error_class is expected
    assert error.status == scenario.status
    assert error.request_id == scenario.headers["x-request-id"]


def test_quota_429_is_not_a_rate_limit() -> None:
    quota, rate = classify(oa.insufficient_quota()), classify(oa.rate_limited(2))
    assert quota.status == rate.status == 429
    assert quota.error_class is ErrorClass.QUOTA_EXHAUSTED and not quota.retryable
    assert rate.error_class is ErrorClass.RATE_LIMIT and rate.retry_after == 2.0


def test_compatible_server_shapes() -> None:
    fastapi_style = openai_audio_error(422, {}, json.dumps({"detail": "bad file"}).encode(), provider="p")
    assert fastapi_style.error_class is ErrorClass.INVALID_REQUEST and "bad file" in fastapi_style.message
    html = openai_audio_error(502, {}, b"<html>Bad Gateway</html>", provider="p")
    assert html.error_class is ErrorClass.SERVER_ERROR


def test_echoed_key_is_scrubbed() -> None:
    error = classify(oa.invalid_api_key(CANARY_KEY), secrets=(f"Bearer {CANARY_KEY}", CANARY_KEY))
    assert "CANARY" not in error.message + str(error) + repr(error) + "".join(map(str, error.args))


def test_multipart_encodes_fields_and_file() -> None:
    body, content_type = multipart({"model": "whisper-1"}, {"file": ("a.wav", b"RIFF....", "audio/wav")})
    boundary = content_type.split("boundary=")[1]
    assert content_type.startswith("multipart/form-data")
    assert body.count(boundary.encode()) == 3
    assert b'name="model"\r\n\r\nwhisper-1' in body
    assert b'filename="a.wav"' in body and b"RIFF...." in body
