"""The tracing seam: off it makes nothing; the OTLP exporter's URL is the collector's traces path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from foundation import tracing


def test_off_nothing_is_made_or_attached() -> None:
    assert not tracing.on() and not tracing.recording()
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


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    tracing.disable()


def test_a_recorded_span_reaches_the_exporter_as_the_sdk_would_send_it(
    exporter: InMemorySpanExporter,
) -> None:
    tracing.enable(exporter, batch=False, service="svc")
    root = tracing.start("request", kind="server", attributes={"a": 1})
    assert tracing.recorded(root) and not tracing.recorded(None)
    token = tracing.activate(root)
    assert tracing.recording() and tracing.recording(root)
    child = tracing.start("child")
    tracing.set_attributes(child, {"b": "x"})
    tracing.end(child, error="timeout")
    tracing.deactivate(token)
    tracing.end(root, attributes={"c": True})
    first, second = exporter.get_finished_spans()
    assert (first.name, second.name) == ("child", "request")
    assert first.parent is not None and second.context is not None
    assert first.parent.span_id == second.context.span_id and second.parent is None
    assert first.context is not None and first.context.trace_id == second.context.trace_id
    assert tracing.trace_id_of(root) == format(second.context.trace_id, "032x")
    assert dict(first.attributes or {}) == {"b": "x", "error.type": "timeout"}
    assert first.status.status_code.name == "ERROR" and first.status.description == "timeout"
    assert dict(second.attributes or {}) == {"a": 1, "c": True} and second.status.status_code.name == "UNSET"
    assert second.kind.name == "SERVER" and first.kind.name == "INTERNAL"
    assert second.resource.attributes["service.name"] == "svc"
    assert first.start_time is not None and first.end_time is not None and first.start_time <= first.end_time


def test_an_unsampled_trace_is_one_marker_its_children_inherit(exporter: InMemorySpanExporter) -> None:
    tracing.enable(exporter, batch=False, ratio=0.0)
    assert tracing.recording()  # no trace yet: the root decides
    root = tracing.start("request", kind="server")
    assert root is tracing.UNSAMPLED and not tracing.recorded(root)
    token = tracing.activate(root)
    # Call sites ask first, so they build no attributes for a trace left out.
    assert not tracing.recording() and not tracing.recording(root)
    assert tracing.start("child") is tracing.UNSAMPLED and tracing.trace_id() is None
    assert tracing.start("explicit", parent=root) is tracing.UNSAMPLED
    with tracing.step("voice.llm") as span:
        assert span is None
        tracing.fail(span, "error")
    tracing.deactivate(token)
    tracing.end(root, error="x", attributes={"a": 1})
    assert exporter.get_finished_spans() == () and tracing.trace_id_of(root) is None
    assert tracing.UNSAMPLED.attributes == {} and tracing.UNSAMPLED.error is None


@pytest.mark.parametrize(
    ("ratio", "low_bits", "sampled"),
    [
        (1.0, 2**64 - 1, True),
        (0.0, 0, False),
        (0.25, 2**62 - 1, True),
        (0.25, 2**62, False),
        (0.5, 2**63 - 1, True),
        (0.5, 2**63, False),
    ],
)
def test_sampling_follows_the_trace_ids_low_bits_as_opentelemetry_does(
    exporter: InMemorySpanExporter, ratio: float, low_bits: int, sampled: bool
) -> None:
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    tracing.enable(exporter, batch=False, ratio=ratio)
    trace_id = (0xABCD << 64) | low_bits
    assert tracing._recorder is not None and tracing._recorder.samples(trace_id) is sampled
    # The SDK's own sampler agrees.
    decision = TraceIdRatioBased(ratio).should_sample(None, trace_id, "request").decision
    assert (decision is Decision.RECORD_AND_SAMPLE) is sampled


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_a_ratio_outside_zero_to_one_is_refused(exporter: InMemorySpanExporter, ratio: float) -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        tracing.enable(exporter, ratio=ratio)
    assert not tracing.on()
