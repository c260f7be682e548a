"""Gemini error bodies → `ProviderError` (classes: docs/contract.md#error-classes). Pure; no I/O.

Body shape: `{"error": {"code", "message", "status", "details": [...]}}` where `details` holds
typed google.rpc messages. Three of them refine the class: `ErrorInfo.reason` API_KEY_INVALID
(an invalid key is a 400), `QuotaFailure` (a per-day quota or a "limit: 0" means waiting will
not help) and `RetryInfo.retryDelay` (the only retry timing Gemini gives; no headers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from providers.contract import HTTP_STATUS_CLASSES, ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.redaction import redact

_PROVIDER = ProviderId.GEMINI.value
_MAX_MESSAGE = 500
_TYPE_PREFIX = "type.googleapis.com/google.rpc."

_BY_STATUS: Mapping[str, ErrorClass] = {
    "INVALID_ARGUMENT": ErrorClass.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorClass.QUOTA_EXHAUSTED,
    "UNAUTHENTICATED": ErrorClass.AUTH,
    "PERMISSION_DENIED": ErrorClass.PERMISSION,
    "NOT_FOUND": ErrorClass.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorClass.RATE_LIMIT,
    "INTERNAL": ErrorClass.SERVER_ERROR,
    "UNKNOWN": ErrorClass.SERVER_ERROR,
    "UNAVAILABLE": ErrorClass.OVERLOADED,
    "DEADLINE_EXCEEDED": ErrorClass.TIMEOUT,
    "CANCELLED": ErrorClass.NETWORK,
}

_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_ZERO_LIMIT = re.compile(r"\blimit: 0\b")
_CONTEXT = re.compile(r"input token count.*exceeds", re.IGNORECASE | re.DOTALL)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _details(error: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, Mapping) and d.get("@type") == _TYPE_PREFIX + kind]


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """`RetryInfo.retryDelay` ("46s", "0.5s") in seconds."""
    for info in _details(error, "RetryInfo"):
        match = _DURATION.match(str(info.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def _daily_quota(error: Mapping[str, Any]) -> bool:
    for failure in _details(error, "QuotaFailure"):
        for violation in failure.get("violations") or []:
            if isinstance(violation, Mapping) and "PerDay" in str(violation.get("quotaId", "")):
                return True
    return False


def _classify(status: int | None, error: Mapping[str, Any], message: str) -> ErrorClass:
    rpc_status = str(error.get("status") or "")
    reasons = {str(info.get("reason")) for info in _details(error, "ErrorInfo")}
    if reasons & _AUTH_REASONS:
        return ErrorClass.AUTH
    code = status if status is not None else error.get("code")
    base = _BY_STATUS.get(rpc_status) or (HTTP_STATUS_CLASSES.get(code) if isinstance(code, int) else None)
    if base is None:
        base = (
            ErrorClass.SERVER_ERROR if isinstance(code, int) and code >= 500 else ErrorClass.INVALID_REQUEST
        )
    if base is ErrorClass.INVALID_REQUEST and _CONTEXT.search(message):
        return ErrorClass.CONTEXT_LENGTH
    if base is ErrorClass.RATE_LIMIT and (_ZERO_LIMIT.search(message) or _daily_quota(error)):
        return ErrorClass.QUOTA_EXHAUSTED
    return base


def error_from_payload(
    error: Mapping[str, Any],
    *,
    status: int | None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
    model: str | None = None,
) -> ProviderError:
    """Classify an `error` object, from an HTTP error body or from inside a stream."""
    raw_message = str(error.get("message") or error.get("status") or "error")
    error_class = _classify(status, error, raw_message)
    message = redact(raw_message, secrets)[:_MAX_MESSAGE]
    return ProviderError(
        error_class,
        message,
        provider=_PROVIDER,
        status=status,
        retry_after=retry_delay(error) if error_class is ErrorClass.RATE_LIMIT else None,
        provider_code=str(error.get("status") or "") or None,
        request_id=request_id,
        model=model,
    )


def classify_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    model: str | None = None,
) -> ProviderError:
    """An HTTP error response → `ProviderError`; a non-JSON body is classified by status alone."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, list) and payload:
        # Without alt=sse, errors can arrive wrapped in a JSON array.
        payload = payload[0]
    if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        error: Mapping[str, Any] = payload["error"]
    else:
        text = body.decode("utf-8", errors="replace").strip()
        error = {"code": status, "message": text[:200] or f"HTTP {status}"}
    request_id = headers.get("x-request-id") or headers.get("x-goog-request-id")
    return error_from_payload(error, status=status, request_id=request_id, secrets=secrets, model=model)
