"""The tracing seam: off it makes nothing; the OTLP exporter's URL is the collector's traces path."""

from __future__ import annotations

import pytest

from foundation import tracing


def test_off_nothing_is_made_or_attached() -> None:
    assert not tracing.on()
    assert tracing.start("routing.plan", attributes={"a": 1}) is None
    assert tracing.activate(None) is None
    tracing.deactivate(None)
    tracing.end(None, error="rate_limit")
    assert tracing.trace_id() is None and tracing.flush()


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://otel:4318", "http://otel:4318/v1/traces"),
        ("http://otel:4318/", "http://otel:4318/v1/traces"),
        ("https://collector.example/custom/traces", "https://collector.example/custom/traces"),
    ],
)
def test_otlp_exporter_posts_to_the_traces_path(endpoint: str, url: str) -> None:
    exporter = tracing.otlp_exporter(endpoint)
    assert exporter._endpoint == url  # type: ignore[attr-defined]
    exporter.shutdown()
