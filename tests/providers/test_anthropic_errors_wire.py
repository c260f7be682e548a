"""Anthropic error responses → ProviderError: pure classification, no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.adapters.anthropic_errors_wire import classify_error
from providers.contract import ErrorClass


def body(error_type: str, message: str, **details: Any) -> bytes:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details:
        error["details"] = details
    return json.dumps({"type": "error", "error": error, "request_id": "req_body"}).encode()


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (400, body("invalid_request_error", "messages: Field required"), ErrorClass.INVALID_REQUEST),
        (
            400,
            body("invalid_request_error", "prompt is too long: 215304 tokens > 200000 maximum"),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            400,
            body(
                "invalid_request_error",
                "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            ),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            400,
            body("invalid_request_error", "Your credit balance is too low to access the API."),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (401, body("authentication_error", "invalid x-api-key"), ErrorClass.AUTH),
        (402, body("billing_error", "billing"), ErrorClass.QUOTA_EXHAUSTED),
        (403, body("permission_error", "no"), ErrorClass.PERMISSION),
        (404, body("not_found_error", "model: x"), ErrorClass.NOT_FOUND),
        (408, body("timeout_error", "Request timed out"), ErrorClass.TIMEOUT),
        (413, body("request_too_large", "too big"), ErrorClass.INVALID_REQUEST),
        (413, b"<html>413 Request Entity Too Large</html>", ErrorClass.INVALID_REQUEST),
        (429, body("rate_limit_error", "slow down"), ErrorClass.RATE_LIMIT),
        (
            429,
            body("rate_limit_error", "limit", error_code="enforced_spend_limit_reached"),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (
            429,
            body("rate_limit_error", "limit", error_code="contract_spend_limit_reached"),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (500, body("api_error", "Internal server error"), ErrorClass.SERVER_ERROR),
        (502, b"Bad Gateway", ErrorClass.SERVER_ERROR),
        (504, body("timeout_error", "Gateway timeout"), ErrorClass.TIMEOUT),
        (529, body("overloaded_error", "Overloaded"), ErrorClass.OVERLOADED),
    ],
)
def test_classification(status: int, raw: bytes, expected: ErrorClass) -> None:
    error = classify_error(status, raw, {})
    assert error.error_class is expected
    assert error.status == status
    assert error.provider == "anthropic"


def test_request_id_prefers_header_then_body() -> None:
    raw = body("api_error", "x")
    assert classify_error(500, raw, {"request-id": "req_header"}).request_id == "req_header"
    assert classify_error(500, raw, {}).request_id == "req_body"


def test_retry_after_is_kept_for_rate_limits_but_not_for_spend_caps() -> None:
    assert classify_error(429, body("rate_limit_error", "x"), {}, retry_after=7.0).retry_after == 7.0
    capped = classify_error(
        429, body("rate_limit_error", "x", error_code="enforced_spend_limit_reached"), {}, retry_after=3600
    )
    assert capped.retry_after is None
    assert capped.provider_code == "enforced_spend_limit_reached"


def test_secrets_and_key_shaped_tokens_are_scrubbed() -> None:
    key = "sk-ant-api03-CANARYCANARY"
    raw = body("authentication_error", f"invalid x-api-key {key}; also saw sk-ant-other-1234567890")
    error = classify_error(401, raw, {}, secrets=[key])
    assert "CANARY" not in error.message and "1234567890" not in error.message
    assert "[redacted]" in error.message


def test_long_messages_are_truncated() -> None:
    assert len(classify_error(400, body("invalid_request_error", "x" * 5000), {}).message) <= 500


@pytest.mark.parametrize("status", [503, 529])
def test_an_edge_page_with_an_overload_status_is_overloaded(status: int) -> None:
    # No body to read, so the contract's one status table decides, as for every other wire.
    error = classify_error(status, b"<html><body>Service Unavailable</body></html>", {})
    assert error.error_class is ErrorClass.OVERLOADED
