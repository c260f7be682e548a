"""The OTLP span encoder gives the SDK encoder's exact bytes, and the exporter built on it sends
them to a collector over OTLP/HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import IntEnum, StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from foundation import otlp, tracing
from tests.emulators.harness import ServedApp
from tests.emulators.otlp import OtlpCollector

Attributes = Mapping[str, str | int | float | bool]


@pytest.fixture
def recorded() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.enable(spans, batch=False, service="svc")
    yield spans
    tracing.disable()


def _request_spans(attributes: Attributes | None = None) -> None:
    root = tracing.start("POST /v1/chat/completions", kind="server", attributes={"http.route": "/v1"})
    token = tracing.activate(root)
    plan = tracing.start("routing.plan", attributes={"patchbay.intent": "chat", **(attributes or {})})
    upstream = tracing.start("upstream openai", kind="client", parent=plan, attributes={"server.port": 9})
    tracing.end(upstream, error="timeout", attributes={"ratio": 0.5, "stream": True})
    tracing.end(plan, attributes={"patchbay.attempts": 1})
    tracing.deactivate(token)
    tracing.end(root, attributes={"http.response.status_code": 200})


def _same_bytes(spans: list[ReadableSpan], encoder: otlp.SpanEncoder | None = None) -> bytes:
    encoded = (encoder or otlp.SpanEncoder()).encode(spans)
    assert encoded == encode_spans(spans).SerializePartialToString()
    return encoded


def test_the_seams_spans_encode_to_the_sdk_encoders_bytes(recorded: InMemorySpanExporter) -> None:
    encoder = otlp.SpanEncoder()
    for _ in range(3):  # a second batch reuses the attribute, status and envelope messages
        _request_spans()
        spans = list(recorded.get_finished_spans())
        _same_bytes(spans, encoder)
    assert {span.kind for span in spans} == {SpanKind.SERVER, SpanKind.INTERNAL, SpanKind.CLIENT}
    assert any(span.status.description == "timeout" for span in spans)


class _Intent(StrEnum):
    CHAT = "chat"


class _Retry(IntEnum):
    FIRST = 1


def test_values_equal_across_types_stay_apart(
    recorded: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # True == 1 == 1.0 in Python; on the wire they are a bool, an int and a double. Enum members
    # go as their base type, without handing the batch to the SDK's encoder.
    batches_left_to_sdk: list[int] = []

    def sdk(spans: list[ReadableSpan]) -> object:
        batches_left_to_sdk.append(len(spans))
        return encode_spans(spans)

    monkeypatch.setattr(otlp, "encode_spans", sdk)
    encoder = otlp.SpanEncoder()
    for value in (True, 1, 1.0, "1", _Retry.FIRST, _Intent.CHAT, "chat"):
        _request_spans({"v": value})
    spans = list(recorded.get_finished_spans())
    _same_bytes(spans, encoder)
    assert batches_left_to_sdk == [1], "only the envelope, from one span"


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.text(max_size=20), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats()),
        max_size=6,
    )
)
def test_any_scalar_attributes_encode_as_the_sdk_does(
    attributes: dict[str, str | int | float | bool],
) -> None:
    spans = InMemorySpanExporter()
    tracing.enable(spans, batch=False)
    try:
        _request_spans(attributes)
        _same_bytes(list(spans.get_finished_spans()))
    finally:
        tracing.disable()


def _span(name: str, **extra: object) -> ReadableSpan:
    context = SpanContext(7, 11, False, TraceFlags(TraceFlags.SAMPLED), TraceState([("k", "v")]))
    return ReadableSpan(name=name, context=context, start_time=1, end_time=2, **extra)  # type: ignore[arg-type]


def test_what_the_encoder_does_not_cover_is_left_to_the_sdks() -> None:
    remote = SpanContext(7, 3, True, TraceFlags(TraceFlags.SAMPLED))
    batches = [
        [_span("trace state and a remote parent", parent=remote)],
        [_span("event", events=[Event("e", {"a": 1}, timestamp=1)])],
        [_span("link", links=[Link(remote, {"a": 1})])],
        [_span("array", attributes={"a": (1, 2)})],
        [_span("one", resource=Resource({"a": 1})), _span("two", resource=Resource({"a": 2}))],
        [],
    ]
    for batch in batches:
        _same_bytes(batch)


def test_the_attribute_table_is_bounded(
    recorded: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otlp, "ATTRIBUTES_KEPT", 16)
    encoder = otlp.SpanEncoder()
    for turn in range(40):
        _request_spans({"patchbay.turn_id": f"turn-{turn}"})
    spans = list(recorded.get_finished_spans())
    _same_bytes(spans, encoder)
    assert 0 < len(encoder._attributes) <= 16


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[OtlpCollector, str]]:
    served_collector = OtlpCollector()
    with ServedApp(served_collector) as served:
        yield served_collector, served.url


def test_the_exporter_sends_the_encoded_spans(
    recorded: InMemorySpanExporter, collector: tuple[OtlpCollector, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK's own settings still apply: here a collector's token.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20collector-token")
    received, url = collector
    _request_spans()
    spans = list(recorded.get_finished_spans())
    exporter: SpanExporter = tracing.otlp_exporter(url, timeout=5)
    assert isinstance(exporter, otlp.OtlpSpanExporter)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert received.refused == [] and received.headers["authorization"] == "Bearer collector-token"
    assert received.exports[-1].SerializeToString() == encode_spans(spans).SerializeToString()
    assert exporter.export(spans) is SpanExportResult.FAILURE, "a shut-down exporter sends nothing"


def test_a_collector_that_refuses_fails_the_export(
    recorded: InMemorySpanExporter, collector: tuple[OtlpCollector, str]
) -> None:
    received, url = collector
    _request_spans()
    exporter: SpanExporter = otlp.OtlpSpanExporter(endpoint=f"{url}/not-traces", timeout=5)
    try:
        assert exporter.export(list(recorded.get_finished_spans())) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert received.refused[-1].startswith("POST /not-traces")


def test_a_batch_over_the_size_limit_is_not_sent(
    recorded: InMemorySpanExporter, collector: tuple[OtlpCollector, str]
) -> None:
    received, url = collector
    _request_spans()
    before = received.span_count
    exporter: SpanExporter = otlp.OtlpSpanExporter(
        endpoint=f"{url}/v1/traces", timeout=5, max_request_size=64
    )
    try:
        assert exporter.export(list(recorded.get_finished_spans())) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert received.span_count == before


_KINDS_OF_SPAN = st.sampled_from(list(SpanKind))
_STATUSES = st.one_of(
    st.just(Status(StatusCode.UNSET)),
    st.just(Status(StatusCode.OK)),
    st.builds(lambda d: Status(StatusCode.ERROR, d), st.one_of(st.none(), st.text(max_size=30))),
)


@st.composite
def _spans(draw: st.DrawFn) -> ReadableSpan:
    """A span with any of the fields the encoder writes itself, each present or absent."""
    ids = st.integers(1, 2**64 - 1)
    state = draw(st.one_of(st.none(), st.just(TraceState([("vendor", "a=1")]))))
    context = SpanContext(draw(st.integers(1, 2**128 - 1)), draw(ids), False, TraceFlags(1), state)
    parent = draw(st.one_of(st.none(), st.builds(lambda i, r: SpanContext(7, i, r), ids, st.booleans())))
    return ReadableSpan(
        name=draw(st.text(max_size=40)),
        context=context,
        parent=parent,
        kind=draw(_KINDS_OF_SPAN),
        start_time=draw(st.one_of(st.just(0), st.integers(1, 2**64 - 1))),
        end_time=draw(st.one_of(st.just(0), st.integers(1, 2**64 - 1))),
        attributes=draw(
            st.dictionaries(st.text(min_size=1, max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=3)
        ),
        status=draw(_STATUSES),
        resource=_RESOURCE,
    )


_RESOURCE = Resource.create({"service.name": "svc"})


@settings(max_examples=150, deadline=None)
@given(st.lists(_spans(), max_size=5))
def test_any_span_the_encoder_writes_has_the_sdk_encoders_bytes(spans: list[ReadableSpan]) -> None:
    _same_bytes(spans)
