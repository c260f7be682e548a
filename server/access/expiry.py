"""Expiry times as people write them: a span forward from now (`30d`, `12h`, `90m`) or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from billing.report import parse_instant
from foundation.errors import RequestError

_SPAN = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_AHEAD = timedelta(days=3660)


def parse_expiry(text: str | None, *, now: datetime, param: str = "expires") -> datetime | None:
    """None for no expiry; a time in the future, at most ten years ahead, otherwise a `RequestError`."""
    if text is None or not text.strip():
        return None
    span = _SPAN.match(text.strip())
    # A span runs forward from now here; anything else is read as `since` reads a time.
    at = now + timedelta(**{_UNITS[span.group(2)]: int(span.group(1))}) if span else parse_instant(text, now=now, param=param)
    if at <= now:
        raise RequestError(f"{param} must lie in the future", param=param)
    if at - now > MAX_AHEAD:
        raise RequestError(f"{param} may lie at most ten years ahead", param=param)
    return at
