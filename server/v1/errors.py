"""What `/v1` answers when a request fails: one `ApiError`, rendered in OpenAI's or Anthropic's shape.

Statuses: 400 invalid request, 401 bad or expired key, 402 out of credits, 403 model not
allowed (by the org's allowlist or the key's model list), 404 unknown model, 409 the request
id (`x-request-id`) was charged by the predecessor's billing (docs/billing.md), 429 rate limited
(ours, every upstream's, or the caller's address locked out after failed authentication; with
`retry-after`), 502 every candidate failed upstream. When every candidate was skipped, the skip
reasons decide (routing/skip_reasons.py): 400 for what the caller or the admin must fix (a
capability, a conformance gate, a disabled connection), 403 for the org's plan, 503 only for
what passes with time (cooldowns), with `retry-after` when the soonest one ends at a known time.
Every body carries the request id (`x-request-id`). A message never quotes an upstream key or
an upstream body: provider text is passed on only for the fail-fast classes the caller must act
on (invalid request, context length, content filter), and adapters have already scrubbed it of
the credential they sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

import orjson
from pydantic import ValidationError

from billing.ledger_types import RequestAlreadyChargedError
from billing.preflight import InsufficientCreditsError
from providers.contract import ErrorClass
from providers.errors import ProviderError
from routing.errors import AllAttemptsFailedError, ModelNotAllowedError, NoRouteError
from routing.skip_reasons import SkipKind, refusal
from routing.trace import AttemptTrace
from server.auth_throttle import lockout_message
from server.key_scope import describe_models
from server.logs import request_id_var
from server.v1.openai_translate import WireRequestError

_CALLER_FIXES: frozenset[ErrorClass] = frozenset(
    {ErrorClass.INVALID_REQUEST, ErrorClass.CONTEXT_LENGTH, ErrorClass.CONTENT_FILTER}
)
_CODES: Mapping[ErrorClass, str] = MappingProxyType(
    {
        ErrorClass.CONTEXT_LENGTH: "context_length_exceeded",
        ErrorClass.CONTENT_FILTER: "content_filter",
        ErrorClass.INVALID_REQUEST: "invalid_request",
    }
)
_ANTHROPIC_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        409: "invalid_request_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
    }
)


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}

    def openai_body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        rid = request_id_var.get()
        if rid:
            error["request_id"] = rid
        return orjson.dumps({"error": error})

    def anthropic_body(self) -> bytes:
        """Anthropic's shape, with the request id at the top level as Anthropic sends it."""
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error")
        body: dict[str, object] = {"type": "error", "error": {"type": kind, "message": self.message}}
        rid = request_id_var.get()
        if rid:
            body["request_id"] = rid
        return orjson.dumps(body)


BAD_KEY = ApiError(401, "invalid_request_error", "invalid or revoked API key", code="invalid_api_key")
MISSING_KEY = ApiError(
    401,
    "invalid_request_error",
    "missing API key: send `Authorization: Bearer pb-...`",
    code="missing_api_key",
)


def expired_key(expires_at: datetime) -> ApiError:
    when = expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"this API key expired at {when}; create a new one"
    return ApiError(401, "invalid_request_error", message, code="invalid_api_key")


def key_model_not_allowed(requested: str | None, allowed: frozenset[str]) -> ApiError:
    """A model outside the key's own list (the org's allowlist is `ModelNotAllowedError`)."""
    asked = (requested or "").strip()[:200] or "default"
    return ApiError(
        403,
        "permission_error",
        f"this API key may not use model {asked!r}; it may use: {describe_models(allowed)}",
        code="model_not_allowed",
        param="model",
    )


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, param=param)


def rate_limited(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "rate_limit_error",
        "rate limit for this API key exceeded; retry after the given delay",
        code="rate_limit_exceeded",
        retry_after=retry_after,
    )


def auth_locked(retry_after: float) -> ApiError:
    """The caller's address failed authentication too often (server/auth_throttle.py)."""
    return ApiError(
        429,
        "rate_limit_error",
        lockout_message(retry_after),
        code="auth_failures_exceeded",
        retry_after=retry_after,
    )


def from_validation(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return invalid("invalid request")
    where = ".".join(str(p) for p in errors[0]["loc"])
    message = errors[0]["msg"]
    return invalid(f"{where}: {message}" if where else message, where or None)


_SKIP_ANSWERS: Mapping[SkipKind, tuple[int, str]] = MappingProxyType(
    {
        SkipKind.CONFIG: (400, "invalid_request_error"),
        SkipKind.TIER: (403, "permission_error"),
        SkipKind.TRANSIENT: (503, "service_unavailable"),
    }
)
"""The one table from who must act on an all-skipped request to its status and OpenAI `type`."""


def all_skipped(trace: AttemptTrace) -> ApiError:
    """Every candidate was skipped: the skip reasons say whose fix it is (see the module doc)."""
    found = refusal(trace.entries)
    status, type_ = _SKIP_ANSWERS[found.kind]
    param = "model" if found.kind is not SkipKind.TRANSIENT else None
    return ApiError(status, type_, found.message, code=found.code, param=param, retry_after=found.retry_after)


def from_provider_error(err: ProviderError | None) -> ApiError:
    """The caller-facing error for a failure of the routed call."""
    if err is None:
        return ApiError(502, "upstream_error", "every candidate failed", code="upstream_failed")
    cls = err.error_class
    if cls in _CALLER_FIXES:
        return ApiError(400, "invalid_request_error", f"{err.provider}: {err.message}", code=_CODES[cls])
    if cls is ErrorClass.RATE_LIMIT:
        return ApiError(
            429,
            "rate_limit_error",
            "every candidate is rate limited upstream",
            code="upstream_rate_limited",
            retry_after=err.retry_after if err.retry_after is not None else 1.0,
        )
    if err.pool_exhausted:
        # Not the upstream's answer: this worker's connections to it were all in use.
        return ApiError(
            503,
            "service_unavailable",
            "this server's connections to the upstream were all in use; retry shortly",
            code="upstream_connections_busy",
            retry_after=1.0,
        )
    if cls is ErrorClass.OVERLOADED:
        return ApiError(
            503, "service_unavailable", "every candidate is overloaded upstream", code="upstream_overloaded"
        )
    # Auth, permission, quota, not-found, timeouts, network and server errors are the
    # provider's or the connection's problem, never the caller's; their text stays in the log.
    return ApiError(
        502, "upstream_error", f"every candidate failed; last: {cls.value}", code=f"upstream_{cls.value}"
    )


def after_output(err: ProviderError) -> ApiError:
    """For the error chunk that ends a stream whose output had started (no fallback is possible)."""
    base = from_provider_error(err)
    if base.status == 400:
        return base
    return ApiError(
        base.status,
        base.type,
        f"the upstream stream failed after output started: {err.error_class.value}",
        code=base.code,
        retry_after=base.retry_after,
    )


def from_exception(exc: BaseException) -> ApiError | None:
    """The API error for an exception the surface expects; None for a bug (a 500 upstream of us)."""
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    if isinstance(exc, WireRequestError):
        return invalid(str(exc), exc.param)
    if isinstance(exc, ModelNotAllowedError):
        return ApiError(403, "permission_error", str(exc), code="model_not_allowed")
    if isinstance(exc, NoRouteError):
        return ApiError(404, "invalid_request_error", str(exc), code="model_not_found", param="model")
    if isinstance(exc, RequestAlreadyChargedError):
        return ApiError(409, "invalid_request_error", str(exc), code=exc.code, param="x-request-id")
    if isinstance(exc, InsufficientCreditsError):
        # `insufficient_credits`, or a cap's own code (`budget_exceeded`, `spend_limit_exceeded`).
        return ApiError(402, "insufficient_quota", str(exc) or "out of credits", code=exc.code)
    if isinstance(exc, AllAttemptsFailedError):
        tried = any(e.outcome.value == "failed" for e in exc.trace.entries)
        return from_provider_error(exc.last_error) if tried else all_skipped(exc.trace)
    if isinstance(exc, ProviderError):
        return from_provider_error(exc)
    return None
