"""Anthropic error responses → `ProviderError` (classes: docs/contract.md#error-classes). Pure; no I/O.

Status codes decide most classes, but three need the body: a 400 can be a billing problem
("credit balance is too low") or a context overflow ("prompt is too long"), and a 429 carrying
`details.error_code` of a spend limit is a quota that waiting will not fix. Mid-stream `error`
events have no status; their `error.type` maps to the class the matching status would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from providers.contract import HTTP_STATUS_CLASSES, ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.redaction import redact

_PROVIDER = ProviderId.ANTHROPIC.value
_MAX_MESSAGE = 500

_BY_TYPE: Mapping[str, ErrorClass] = {
    "invalid_request_error": ErrorClass.INVALID_REQUEST,
    "authentication_error": ErrorClass.AUTH,
    "billing_error": ErrorClass.QUOTA_EXHAUSTED,
    "permission_error": ErrorClass.PERMISSION,
    "not_found_error": ErrorClass.NOT_FOUND,
    "request_too_large": ErrorClass.INVALID_REQUEST,
    "rate_limit_error": ErrorClass.RATE_LIMIT,
    "timeout_error": ErrorClass.TIMEOUT,
    "api_error": ErrorClass.SERVER_ERROR,
    "overloaded_error": ErrorClass.OVERLOADED,
}

_SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached", "contract_spend_limit_reached"})
_BILLING_PHRASES = ("credit balance is too low", "spend limit")
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window")


def _refine(error_class: ErrorClass, message: str, error_code: str | None) -> ErrorClass:
    lowered = message.lower()
    if error_class is ErrorClass.INVALID_REQUEST:
        if any(p in lowered for p in _BILLING_PHRASES):
            return ErrorClass.QUOTA_EXHAUSTED
        if any(p in lowered for p in _CONTEXT_PHRASES):
            return ErrorClass.CONTEXT_LENGTH
    if error_class is ErrorClass.RATE_LIMIT and error_code in _SPEND_LIMIT_CODES:
        return ErrorClass.QUOTA_EXHAUSTED
    return error_class


def error_from_payload(
    error: Mapping[str, Any],
    *,
    status: int | None,
    request_id: str | None = None,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
    model: str | None = None,
) -> ProviderError:
    """Classify the `error` object of an error body or of a mid-stream `error` event."""
    error_type = str(error.get("type") or "")
    message = redact(str(error.get("message") or error_type or "error"), secrets)[:_MAX_MESSAGE]
    details = error.get("details")
    error_code = details.get("error_code") if isinstance(details, Mapping) else None
    if status is not None and status in HTTP_STATUS_CLASSES:
        base = HTTP_STATUS_CLASSES[status]
    elif error_type in _BY_TYPE:
        base = _BY_TYPE[error_type]
    elif status is not None and status >= 500:
        base = ErrorClass.SERVER_ERROR
    else:
        base = ErrorClass.INVALID_REQUEST
    error_class = _refine(base, message, error_code if isinstance(error_code, str) else None)
    return ProviderError(
        error_class,
        message,
        provider=_PROVIDER,
        status=status,
        retry_after=retry_after if error_class is not ErrorClass.QUOTA_EXHAUSTED else None,
        provider_code=str(error_code or error_type) or None,
        request_id=request_id,
        model=model,
    )


def classify_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
    model: str | None = None,
) -> ProviderError:
    """An HTTP error response → `ProviderError`. The body may not be JSON (a 413 from the edge)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    request_id = headers.get("request-id")
    error: Mapping[str, Any]
    if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        error = payload["error"]
        request_id = request_id or payload.get("request_id")
    else:
        text = body.decode("utf-8", errors="replace").strip()
        error = {"type": "", "message": text[:200] or f"HTTP {status}"}
    return error_from_payload(
        error, status=status, request_id=request_id, retry_after=retry_after, secrets=secrets, model=model
    )
