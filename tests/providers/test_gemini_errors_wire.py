"""Gemini error bodies → ProviderError: pure classification, no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.adapters.gemini_errors_wire import classify_error
from providers.contract import ErrorClass

RPC = "type.googleapis.com/google.rpc."


def body(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}).encode()


KEY_INVALID = {"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
RETRY = {"@type": RPC + "RetryInfo", "retryDelay": "46s"}


def quota(quota_id: str) -> dict[str, Any]:
    return {"@type": RPC + "QuotaFailure", "violations": [{"quotaId": quota_id, "quotaValue": "10"}]}


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (400, body(400, "INVALID_ARGUMENT", "API key not valid.", KEY_INVALID), ErrorClass.AUTH),
        (400, body(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), ErrorClass.INVALID_REQUEST),
        (
            400,
            body(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200341) exceeds the maximum number of tokens allowed (1048576).",
            ),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            400,
            body(400, "FAILED_PRECONDITION", "User location is not supported."),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (
            401,
            body(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            ErrorClass.AUTH,
        ),
        (403, body(403, "PERMISSION_DENIED", "The caller does not have permission"), ErrorClass.PERMISSION),
        (404, body(404, "NOT_FOUND", "models/x is not found"), ErrorClass.NOT_FOUND),
        (429, body(429, "RESOURCE_EXHAUSTED", "limit: 10", quota("PerMinute"), RETRY), ErrorClass.RATE_LIMIT),
        (
            429,
            body(429, "RESOURCE_EXHAUSTED", "Quota exceeded, limit: 0, model: x", RETRY),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (
            429,
            body(
                429,
                "RESOURCE_EXHAUSTED",
                "limit: 250",
                quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
            ),
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (500, body(500, "INTERNAL", "An internal error has occurred."), ErrorClass.SERVER_ERROR),
        (503, body(503, "UNAVAILABLE", "The model is overloaded."), ErrorClass.OVERLOADED),
        (504, body(504, "DEADLINE_EXCEEDED", "Deadline expired."), ErrorClass.TIMEOUT),
        (502, b"<html>Bad Gateway</html>", ErrorClass.SERVER_ERROR),
        (429, b"[" + body(429, "RESOURCE_EXHAUSTED", "slow down", RETRY) + b"]", ErrorClass.RATE_LIMIT),
    ],
)
def test_classification(status: int, raw: bytes, expected: ErrorClass) -> None:
    error = classify_error(status, raw, {})
    assert error.error_class is expected
    assert error.status == status and error.provider == "gemini"


def test_retry_delay_only_for_rate_limits() -> None:
    assert classify_error(429, body(429, "RESOURCE_EXHAUSTED", "limit: 10", RETRY), {}).retry_after == 46.0
    fractional = {"@type": RPC + "RetryInfo", "retryDelay": "0.5s"}
    assert classify_error(429, body(429, "RESOURCE_EXHAUSTED", "x", fractional), {}).retry_after == 0.5
    assert classify_error(429, body(429, "RESOURCE_EXHAUSTED", "limit: 0", RETRY), {}).retry_after is None


def test_provider_code_and_request_id() -> None:
    error = classify_error(503, body(503, "UNAVAILABLE", "x"), {"x-goog-request-id": "abc"})
    assert (error.provider_code, error.request_id) == ("UNAVAILABLE", "abc")


def test_keys_are_scrubbed() -> None:
    key = "AIzaSyCANARY0123456789abcdefghijkl"
    error = classify_error(
        400, body(400, "INVALID_ARGUMENT", f"API key {key} not valid.", KEY_INVALID), {}, secrets=[key]
    )
    assert "CANARY" not in error.message and "[redacted]" in error.message


@pytest.mark.parametrize(
    ("status", "error_class"), [(529, ErrorClass.OVERLOADED), (402, ErrorClass.QUOTA_EXHAUSTED)]
)
def test_a_bare_status_reads_as_the_contract_table_says(status: int, error_class: ErrorClass) -> None:
    # No google.rpc status in an edge's page, so the contract's one status table decides.
    assert classify_error(status, b"<html><body>busy</body></html>", {}).error_class is error_class
