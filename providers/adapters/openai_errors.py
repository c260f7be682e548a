"""Classify OpenAI-format error responses into the contract's error classes.

One function covers OpenAI and every compatible server, because they share the status
codes and differ only in body shape and in a few codes that override the status
(classes: docs/contract.md#error-classes): OpenAI's 429 `insufficient_quota` is billing, not a rate limit;
xAI reports a bad key as 400; Kimi reports an empty balance as 403 and overload as 429.
Order of evidence: a known `code`/`type`, then a known message pattern, then the status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.contract import ErrorClass, error_class_for_status
from providers.errors import ProviderError
from providers.redaction import redact
from providers.reply_headers import first_header, parse_retry_after

_MAX_MESSAGE = 500

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-generation-id", "openai-request-id")

CODES: Mapping[str, ErrorClass] = {
    "context_length_exceeded": ErrorClass.CONTEXT_LENGTH,
    "exceed_context_size_error": ErrorClass.CONTEXT_LENGTH,
    "insufficient_quota": ErrorClass.QUOTA_EXHAUSTED,
    "exceeded_current_quota_error": ErrorClass.QUOTA_EXHAUSTED,
    "billing_error": ErrorClass.QUOTA_EXHAUSTED,
    "engine_overloaded_error": ErrorClass.OVERLOADED,
    "overloaded_error": ErrorClass.OVERLOADED,
    "slow_down": ErrorClass.OVERLOADED,
    "rate_limit_exceeded": ErrorClass.RATE_LIMIT,
    "rate_limit_reached_error": ErrorClass.RATE_LIMIT,
    "rate_limit_error": ErrorClass.RATE_LIMIT,
    "invalid_api_key": ErrorClass.AUTH,
    "invalid_authentication_error": ErrorClass.AUTH,
    "authentication_error": ErrorClass.AUTH,
    "model_not_found": ErrorClass.NOT_FOUND,
    "not_found_error": ErrorClass.NOT_FOUND,
    "permission_error": ErrorClass.PERMISSION,
    "unsupported_country_region_territory": ErrorClass.PERMISSION,
}

_CONTEXT = re.compile(
    r"maximum context length|context length|context window|too large for model|exceeded model token limit"
    r"|prompt is too long|exceeds? the context",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"incorrect api key|invalid api key|api key is invalid|invalid authentication", re.IGNORECASE
)
_NOT_FOUND = re.compile(r"model .{0,200}not (?:be )?found|try pulling it|not a valid model", re.IGNORECASE)
_MODERATION = re.compile(r"moderation|flagged", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Fields:
    message: str
    type: str | None
    code: str | None
    status_code: int | None
    """An integer `code` that is an HTTP status (OpenRouter, vLLM, llama.cpp)."""
    metadata: Mapping[str, Any]


def _fields(body: Any) -> _Fields:
    """Pull message/type/code out of every error shape we know."""
    if isinstance(body, (bytes, bytearray)):
        return _Fields(body.decode("utf-8", "replace").strip(), None, None, None, {})
    if isinstance(body, str):
        return _Fields(body.strip(), None, None, None, {})
    if not isinstance(body, dict):
        return _Fields("", None, None, None, {})
    err = body.get("error")
    if isinstance(err, dict):
        # OpenAI, OpenRouter, Kimi, vLLM (new), llama.cpp
        source: Mapping[str, Any] = err
    elif isinstance(err, str):
        # xAI: {"code": "...", "error": "<message>"}
        source = {"message": err, "code": body.get("code"), "type": body.get("type")}
    else:
        # Mistral and old vLLM: {"object": "error", "message", "type", "code"}; FastAPI-style {"detail"}
        source = body if "message" in body else {"message": str(body.get("detail") or "")}
    raw_code = source.get("code")
    status_code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    if isinstance(raw_code, str) and raw_code.isdigit():
        status_code = int(raw_code)
    code = str(raw_code) if raw_code is not None and status_code is None else None
    metadata = source.get("metadata")
    return _Fields(
        message=str(source.get("message") or ""),
        type=str(source["type"]) if source.get("type") else None,
        code=code,
        status_code=status_code,
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def _classify(status: int | None, f: _Fields) -> ErrorClass:
    for token in (f.code, f.type):
        if token and token in CODES:
            return CODES[token]
    if status is None or 400 <= status < 500:
        if _CONTEXT.search(f.message):
            return ErrorClass.CONTEXT_LENGTH
        if _AUTH.search(f.message):
            return ErrorClass.AUTH
        if _NOT_FOUND.search(f.message):
            return ErrorClass.NOT_FOUND
    if status == 403 and (
        f.metadata.get("reasons") or f.metadata.get("flagged_input") or _MODERATION.search(f.message)
    ):
        return ErrorClass.CONTENT_FILTER
    if status is None:
        # In-stream, with no status to go by: OpenAI's own type still says whose fault it is, and
        # a request error must not cool the profile down as if the server had failed.
        return ErrorClass.INVALID_REQUEST if f.type == "invalid_request_error" else ErrorClass.SERVER_ERROR
    return error_class_for_status(status)


def classify_error(
    status: int | None,
    body: Any,
    headers: Mapping[str, str],
    provider: str,
    *,
    secrets: Iterable[str] = (),
    midstream: bool = False,
    model: str | None = None,
) -> ProviderError:
    """Map an HTTP error (or, with `status=None`, an in-stream error chunk) to `ProviderError`.

    `body` is the parsed JSON, or the raw bytes when it was not JSON. Any of `secrets` (the
    auth header values) and anything key-shaped is scrubbed from the message, because some
    providers echo the key back in 401 bodies.
    """
    f = _fields(body)
    effective = status if status is not None else f.status_code
    error_class = _classify(effective, f)
    message = redact(f.message or f"HTTP {status}", secrets)[:_MAX_MESSAGE]
    if midstream:
        message = f"in-stream error: {message}"
    provider_code = f.code or f.type or (str(f.status_code) if f.status_code is not None else None)
    return ProviderError(
        error_class,
        message,
        provider=provider,
        status=status,
        retry_after=parse_retry_after(headers),
        provider_code=provider_code,
        request_id=first_header(headers, REQUEST_ID_HEADERS),
        model=model,
    )
