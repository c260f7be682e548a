"""What every wire protocol reads from an upstream reply's headers: how long it asks to wait
(`retry-after-ms`, `retry-after` in seconds or as an HTTP date) and the first of several
names present (a provider's request id under one of its spellings)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` seconds or `retry-after` HTTP-date.

    Returns None when absent or unparseable; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(value, 0.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)


def first_header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names:
        value = lowered.get(name)
        if value:
            return value
    return None
