"""`classify_error` against every vendor's exact error shapes (pure, no sockets)."""

from __future__ import annotations

import pytest

from providers.adapters.openai_chat import classify_error
from providers.contract import ErrorClass
from providers.errors import ProviderError
from tests.emulators.openai import Scenario
from tests.emulators.openai_errors import ERRORS

# Fixture kinds are named after the class they must map to, except these variants.
VARIANTS = {
    "rate_limit_ms": ErrorClass.RATE_LIMIT,
    "context_length_llamacpp": ErrorClass.CONTEXT_LENGTH,
    "bad_gateway": ErrorClass.SERVER_ERROR,
}

CASES = [(flavor, kind, s) for flavor, kinds in ERRORS.items() for kind, s in kinds.items()]
KEY = "sk-test-CANARY-0123456789abcdef"


def expected(kind: str) -> ErrorClass:
    return VARIANTS.get(kind) or ErrorClass(kind)


def classify(flavor: str, s: Scenario) -> ProviderError:
    body = s.error_body
    if isinstance(body, dict):
        import orjson

        body = orjson.loads(orjson.dumps(body).replace(b"{key}", KEY.encode()))
    return classify_error(s.status, body, s.headers, flavor, secrets=(f"Bearer {KEY}", KEY), model="m")


@pytest.mark.parametrize("flavor,kind,scenario", CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_vendor_error_maps_to_class(flavor: str, kind: str, scenario: Scenario) -> None:
    err = classify(flavor, scenario)
    assert err.error_class is expected(kind)
    assert err.status == scenario.status
    assert err.provider == flavor
    assert err.model == "m"
    assert KEY not in str(err)
    assert "CANARY" not in err.message


def test_openai_429_disambiguation() -> None:
    rate = classify("openai", ERRORS["openai"]["rate_limit"])
    quota = classify("openai", ERRORS["openai"]["quota_exhausted"])
    assert (rate.error_class, rate.retry_after, rate.provider_code) == (
        ErrorClass.RATE_LIMIT,
        2.0,
        "rate_limit_exceeded",
    )
    assert (quota.error_class, quota.retryable, quota.fallback_eligible) == (
        ErrorClass.QUOTA_EXHAUSTED,
        False,
        True,
    )


def test_retry_after_ms_and_request_id() -> None:
    err = classify_error(
        429,
        ERRORS["openai"]["rate_limit_ms"].error_body,
        {"retry-after-ms": "750", "x-request-id": "req_1"},
        "openai",
    )
    assert (err.retry_after, err.request_id) == (0.75, "req_1")


def test_openrouter_numeric_code_in_stream() -> None:
    err = classify_error(
        None, {"error": {"code": 429, "message": "slow down"}}, {}, "openrouter", midstream=True
    )
    assert err.error_class is ErrorClass.RATE_LIMIT
    assert err.status is None
    assert err.message.startswith("in-stream error")


def test_in_stream_request_error_is_not_a_server_error() -> None:
    """Found by the fault matrix (docs/reliability.md): it used to cool the profile down."""
    body = {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}
    err = classify_error(None, body, {}, "openai", midstream=True)
    assert err.error_class is ErrorClass.INVALID_REQUEST
    unknown = {"error": {"message": "boom", "type": "server_error"}}
    assert classify_error(None, unknown, {}, "openai", midstream=True).error_class is ErrorClass.SERVER_ERROR


def test_non_json_body_and_empty_body() -> None:
    assert classify_error(502, b"<html>Bad Gateway</html>", {}, "x").error_class is ErrorClass.SERVER_ERROR
    err = classify_error(418, b"", {}, "x")
    assert (err.error_class, err.message) == (ErrorClass.INVALID_REQUEST, "HTTP 418")
    assert classify_error(599, None, {}, "x").error_class is ErrorClass.SERVER_ERROR


def test_key_echo_is_scrubbed_even_without_known_secrets() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-proj-abc********wxyz.",
            "code": "invalid_api_key",
        }
    }
    err = classify_error(401, body, {}, "openai")
    assert "sk-proj" not in err.message
    assert "wxyz" not in err.message


def test_message_is_truncated() -> None:
    err = classify_error(400, {"error": {"message": "x" * 5000}}, {}, "openai")
    assert len(err.message) <= 500
