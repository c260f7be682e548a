"""HTTP plumbing and error classification shared by the cloud STT/TTS engines.

`open_audio_stream` sends one request through the project's pooled upstream clients
(providers/http.py: per-phase timeouts, transport failures as TIMEOUT/NETWORK, an early exit
closes the connection) and turns a non-2xx answer into a `ProviderError` with the engine's
dialect. Two dialects exist: OpenAI-compatible audio, which shares the chat endpoints' error
shapes (providers/adapters/openai_errors.py), and ElevenLabs, classified here by the pure
`elevenlabs_error`: `{"detail": {"status": code, "message": text}}` where the code outranks
the HTTP status, because quota exhaustion arrives as 401. When the body
says nothing more, both dialects fall back on the contract's one HTTP status table
(`providers.contract.error_class_for_status`), the same the chat adapters use.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from providers.adapters.openai_errors import classify_error
from providers.contract import ErrorClass, error_class_for_status
from providers.errors import ProviderError
from providers.http import Timeouts, UpstreamStream, open_stream, parse_json
from providers.redaction import redact, secrets_in
from providers.reply_headers import first_header, parse_retry_after
from providers.upstream_pool import UpstreamClients

_MAX_MESSAGE = 300

TTS_TIMEOUTS = Timeouts(connect=5.0, first_byte=10.0, between_chunks=10.0, write=10.0)
"""A speaking agent cannot wait a minute for its voice: a stall this long means fall back."""

STT_TIMEOUTS = Timeouts(connect=5.0, first_byte=30.0, between_chunks=10.0, write=30.0)
"""A batch transcription answers only when done, so its first byte may take a while."""

# ElevenLabs keys are `sk_` + hex; providers.http's shape list only knows `sk-`.
_ELEVENLABS_KEY = re.compile(r"\bsk_[A-Za-z0-9]{16,}")

REQUEST_ID_HEADERS = ("request-id", "x-request-id")

ELEVENLABS_CODES: Mapping[str, ErrorClass] = {
    "quota_exceeded": ErrorClass.QUOTA_EXHAUSTED,
    "payment_required": ErrorClass.QUOTA_EXHAUSTED,
    "invalid_api_key": ErrorClass.AUTH,
    "needs_authorization": ErrorClass.AUTH,
    "missing_permissions": ErrorClass.PERMISSION,
    "too_many_concurrent_requests": ErrorClass.RATE_LIMIT,
    "rate_limit_exceeded": ErrorClass.RATE_LIMIT,
    "system_busy": ErrorClass.OVERLOADED,
    "voice_not_found": ErrorClass.NOT_FOUND,
    "model_not_found": ErrorClass.NOT_FOUND,
    # The realtime STT socket's error messages, by `message_type` (providers/speech/elevenlabs_realtime_wire.py).
    "auth_error": ErrorClass.AUTH,
    "unaccepted_terms": ErrorClass.PERMISSION,
    "rate_limited": ErrorClass.RATE_LIMIT,
    "commit_throttled": ErrorClass.RATE_LIMIT,
    "queue_overflow": ErrorClass.OVERLOADED,
    "resource_exhausted": ErrorClass.OVERLOADED,
    "session_time_limit_exceeded": ErrorClass.TIMEOUT,
    "input_error": ErrorClass.INVALID_REQUEST,
    "invalid_request": ErrorClass.INVALID_REQUEST,
    "chunk_size_exceeded": ErrorClass.INVALID_REQUEST,
    "transcriber_error": ErrorClass.SERVER_ERROR,
}

ErrorMapper = Callable[[int, Mapping[str, str], bytes, tuple[str, ...]], ProviderError]
"""(status, headers, raw body, secrets to scrub) → the error to raise."""


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Provider text made safe for a message: no key (exact or key-shaped), one line, capped."""
    text = _ELEVENLABS_KEY.sub("[redacted]", redact(text, secrets))
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def elevenlabs_error(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, secrets: Iterable[str] = ()
) -> ProviderError:
    """Classify an ElevenLabs error response."""
    detail = _detail(parse_json(body))
    code: str | None = None
    text = ""
    if isinstance(detail, dict):
        code = _text(detail.get("status")) or _text(detail.get("code"))
        text = _text(detail.get("message")) or ""
    elif isinstance(detail, list):
        text = "; ".join(_validation_item(item) for item in detail[:3])
    elif isinstance(detail, str):
        text = detail
    if status == 422:
        error_class = ErrorClass.INVALID_REQUEST
    elif code is not None and code in ELEVENLABS_CODES:
        error_class = ELEVENLABS_CODES[code]
    else:
        error_class = error_class_for_status(status)
    current = first_header(headers, ("current-concurrent-requests",))
    maximum = first_header(headers, ("maximum-concurrent-requests",))
    if status == 429 and current is not None and maximum is not None:
        text = f"{text} (concurrent requests {current}/{maximum})".strip()
    return ProviderError(
        error_class,
        scrub(text or f"HTTP {status}", secrets),
        provider=provider,
        status=status,
        retry_after=parse_retry_after(headers),
        provider_code=code,
        request_id=first_header(headers, REQUEST_ID_HEADERS),
    )


def openai_audio_error(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, secrets: Iterable[str] = ()
) -> ProviderError:
    """OpenAI-compatible audio errors have the chat endpoints' shapes and codes."""
    parsed = parse_json(body)
    error = classify_error(status, parsed if parsed is not None else body, headers, provider, secrets=secrets)
    error.message = scrub(error.message, secrets)
    error.args = (error.message,)
    return error


def multipart(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content-type) of a multipart/form-data upload, encoded by httpx."""
    request = httpx.Request("POST", "http://multipart.invalid/", data=dict(fields), files=dict(files))
    return request.read(), request.headers["content-type"]


@asynccontextmanager
async def open_audio_stream(
    clients: UpstreamClients,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes,
    timeouts: Timeouts,
    provider: str,
    on_error: ErrorMapper,
    model: str | None = None,
) -> AsyncIterator[UpstreamStream]:
    """POST and yield the 2xx stream; any other status is read and raised via `on_error`.

    Every `ProviderError` leaving the block (HTTP, timeout or transport) carries `model` and
    has the auth header values scrubbed from its message.
    """
    secrets = secrets_in(headers)
    try:
        async with open_stream(
            clients, "POST", url, headers=headers, body=body, timeouts=timeouts, provider=provider
        ) as upstream:
            if not 200 <= upstream.status < 300:
                raw = await upstream.read_error_body()
                raise on_error(upstream.status, upstream.headers, raw, secrets)
            yield upstream
    except ProviderError as exc:
        exc.message = scrub(exc.message, secrets)
        exc.args = (exc.message,)
        if exc.model is None:
            exc.model = model
        raise


def _detail(parsed: Any) -> Any:
    return parsed.get("detail") if isinstance(parsed, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _validation_item(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc", []) if isinstance(part, str | int))
    return f"{loc}: {item.get('msg', '')}".strip(": ")
