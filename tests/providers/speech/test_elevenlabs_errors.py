"""ElevenLabs error bodies → ProviderError, as pure functions (providers/speech/errors.py)."""

from __future__ import annotations

import json

import pytest

from providers.contract import ErrorClass
from providers.speech.errors import elevenlabs_error, scrub
from tests.emulators import elevenlabs as el
from tests.emulators.scripted import CANARY_KEY, Scenario


def classify(scenario: Scenario):
    return elevenlabs_error(scenario.status, scenario.headers, scenario.body, provider="elevenlabs:test")


@pytest.mark.parametrize(
    ("scenario", "expected", "code"),
    [
        (el.invalid_api_key(), ErrorClass.AUTH, "invalid_api_key"),
        (el.quota_exceeded(), ErrorClass.QUOTA_EXHAUSTED, "quota_exceeded"),
        (el.too_many_concurrent(), ErrorClass.RATE_LIMIT, "too_many_concurrent_requests"),
        (el.system_busy(), ErrorClass.OVERLOADED, "system_busy"),
        (el.voice_not_found(), ErrorClass.NOT_FOUND, "voice_not_found"),
        (el.validation_error(), ErrorClass.INVALID_REQUEST, None),
        (el.server_error(500), ErrorClass.SERVER_ERROR, "internal_server_error"),
        (el.server_error(502), ErrorClass.SERVER_ERROR, "internal_server_error"),
    ],
)
def test_documented_errors_map_to_their_class(
    scenario: Scenario, expected: ErrorClass, code: str | None
) -> None:
    error = classify(scenario)
    assert error.error_class is expected
    assert error.status == scenario.status
    assert error.provider_code == code
    assert error.provider == "elevenlabs:test"


def test_quota_comes_as_401_but_is_not_an_auth_error() -> None:
    quota, auth = classify(el.quota_exceeded()), classify(el.invalid_api_key())
    assert quota.status == auth.status == 401
    assert (quota.error_class, auth.error_class) == (ErrorClass.QUOTA_EXHAUSTED, ErrorClass.AUTH)
    assert quota.fallback_eligible and auth.fallback_eligible


def test_rate_limit_carries_retry_after_and_concurrency() -> None:
    error = classify(el.too_many_concurrent(retry_after=2.5))
    assert error.retry_after == 2.5
    assert f"{el.MAX_CONCURRENT + 1}/{el.MAX_CONCURRENT}" in error.message
    assert error.fallback_eligible


def test_validation_detail_list_becomes_the_message() -> None:
    error = classify(el.validation_error("model_id"))
    assert error.error_class is ErrorClass.INVALID_REQUEST
    assert "body.model_id" in error.message
    assert not error.fallback_eligible


def test_status_decides_when_the_body_is_not_json() -> None:
    error = elevenlabs_error(503, {}, b"<html>upstream connect error</html>", provider="p")
    assert error.error_class is ErrorClass.OVERLOADED
    assert error.provider_code is None
    assert elevenlabs_error(504, {}, b"", provider="p").error_class is ErrorClass.TIMEOUT
    assert elevenlabs_error(418, {}, b"", provider="p").error_class is ErrorClass.INVALID_REQUEST


def test_request_id_is_kept() -> None:
    error = elevenlabs_error(500, {"request-id": "abc123"}, b"{}", provider="p")
    assert error.request_id == "abc123"


def test_echoed_key_is_redacted_everywhere() -> None:
    error = classify(el.echo_key_error(CANARY_KEY))
    for text in (error.message, str(error), repr(error), *map(str, error.args)):
        assert "CANARY" not in text
    assert "[redacted]" in error.message


def test_exact_secrets_are_scrubbed_even_when_not_key_shaped() -> None:
    error = elevenlabs_error(
        401,
        {},
        b'{"detail": {"status": "invalid_api_key", "message": "key plainword123 refused"}}',
        provider="p",
        secrets=("plainword123",),
    )
    assert "plainword123" not in error.message


@pytest.mark.parametrize("secret", [CANARY_KEY, "sk_" + "0123456789abcdef" * 3])
def test_scrub_removes_key_shapes(secret: str) -> None:
    cleaned = scrub(f"the key {secret} was refused")
    assert secret not in cleaned
    assert cleaned.startswith("the key") and cleaned.endswith("was refused")


def test_scrub_keeps_ordinary_text_and_caps_length() -> None:
    assert scrub("Invalid   API\nkey") == "Invalid API key"
    assert len(scrub("word " * 200)) <= 300


def test_retry_after_header_is_honoured() -> None:
    error = elevenlabs_error(429, {"Retry-After": "3"}, el.system_busy().body, provider="p")
    assert error.retry_after == 3.0
    assert elevenlabs_error(429, {}, el.system_busy().body, provider="p").retry_after is None


def test_error_bodies_are_elevenlabs_shaped() -> None:
    body = json.loads(el.quota_exceeded().body)
    assert set(body) == {"detail"} and set(body["detail"]) == {"status", "message"}
