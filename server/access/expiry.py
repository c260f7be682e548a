"""Expiry times as people write them, for every credential that expires (admin tokens, API keys):
a span forward from now (`30d`, `12h`, `90m`) or an ISO 8601 time (UTC when it names no zone)."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.report import parse_instant, parse_span
from foundation.errors import RequestError


def parse_expiry(text: str | None, *, now: datetime, param: str = "expires") -> datetime | None:
    """None for no expiry; a time in the future, otherwise a `RequestError`."""
    if text is None or not text.strip():
        return None
    try:
        span = parse_span(text)
    except OverflowError:
        raise RequestError(f"{param} {text[:40]!r} is too far ahead", param=param) from None
    # A span runs forward from now here; anything else is read as `since` reads a time.
    at = now + span if span is not None else parse_instant(text, now=now, param=param)
    if at <= now:
        raise RequestError(f"{param} must lie in the future ({text[:40]!r} does not)", param=param)
    return at.astimezone(UTC)
