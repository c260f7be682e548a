"""Expiry times: a span ahead or an ISO time, in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from foundation.errors import RequestError
from server.access.expiry import parse_expiry

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_expiry_is_an_iso_time_or_a_span_ahead_and_in_the_future() -> None:
    assert parse_expiry("30d", now=NOW) == NOW + timedelta(days=30)
    assert parse_expiry("12h", now=NOW) == NOW + timedelta(hours=12)
    assert parse_expiry("90m", now=NOW) == NOW + timedelta(minutes=90)
    assert parse_expiry("2026-07-01T00:00:00", now=NOW) == datetime(2026, 7, 1, tzinfo=UTC)
    assert parse_expiry("2026-07-01T02:00:00+02:00", now=NOW) == datetime(2026, 7, 1, tzinfo=UTC)
    for bad in ("soon", "30x", "0d", "2020-01-01", "99999999999d", "-5d"):
        with pytest.raises(RequestError) as refused:
            parse_expiry(bad, now=NOW)
        assert refused.value.param == "expires"
    assert parse_expiry(None, now=NOW) is None and parse_expiry(" ", now=NOW) is None
