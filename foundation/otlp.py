"""Spans to an OpenTelemetry collector over OTLP/HTTP: the SDK's exporter sends, this module encodes.

The SDK's encoder builds two protobuf messages for every attribute of every span (a `KeyValue`
and its `AnyValue`): about 20 µs a span for a chat request's spans, which made encoding most of
what tracing costs a request. `SpanEncoder` builds an attribute's message once per distinct
key and value and reuses it (a bounded table), and adds each span in place to one request
message: about 4.5 µs a span. The bytes are the SDK encoder's own (a test encodes the same spans
both ways and compares them); a batch this encoder does not cover (events, links, array values,
several resources) is encoded by the SDK's.

`OtlpSpanExporter` is the SDK's `OTLPSpanExporter` with only the encoding replaced: endpoint,
headers, compression, TLS, timeouts and retries stay the SDK's, with its `OTEL_EXPORTER_OTLP_*`
settings. It reaches into the exporter's client, so the SDK's version is pinned in
constraints.txt and tests/foundation/test_otlp.py exports through it to a collector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, SpanFlags, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

_log = logging.getLogger(__name__)

_KINDS = {kind: ProtoSpan.SpanKind.Value(f"SPAN_KIND_{kind.name}") for kind in SpanKind}
_CODES = {code: Status.StatusCode.Value(f"STATUS_CODE_{code.name}") for code in StatusCode}
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_VALUE_FIELDS = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}
ATTRIBUTES_KEPT = 4096
"""Distinct attribute messages kept for reuse; past it the table starts again (ids and counts
that never repeat only cost their own message)."""


def _field_of_subclass(value: object) -> str | None:
    """A `StrEnum` or `IntEnum` member is encoded as its base type, as the SDK does."""
    for base in (bool, str, int, float):
        if isinstance(value, base):
            return _VALUE_FIELDS[base]
    return None


class _NotCovered(Exception):
    """A batch this encoder leaves to the SDK's."""


class SpanEncoder:
    """`ReadableSpan`s to the bytes of one OTLP `ExportTraceServiceRequest`."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, object], KeyValue] = {}
        self._statuses: dict[tuple[StatusCode, str | None], Status] = {}
        self._envelopes: dict[tuple[object, object], ResourceSpans] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        try:
            return self._encode(spans)
        except _NotCovered:
            encoded: bytes = encode_spans(spans).SerializePartialToString()
            return encoded

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        if not spans:
            return b""
        first = spans[0]
        resource, scope = first.resource, first.instrumentation_scope
        request = ExportTraceServiceRequest()
        envelope = request.resource_spans.add()
        envelope.CopyFrom(self._envelope(first))
        out = envelope.scope_spans[0].spans
        attribute = self._attribute
        for span in spans:
            if span.resource is not resource or span.instrumentation_scope is not scope:
                raise _NotCovered
            if span.events or span.links:
                raise _NotCovered
            context, parent, status = span.context, span.parent, span.status
            state = context.trace_state
            added = out.add(
                trace_id=context.trace_id.to_bytes(16, "big"),
                span_id=context.span_id.to_bytes(8, "big"),
                trace_state=",".join(f"{k}={v}" for k, v in state.items()) if state else None,
                parent_span_id=parent.span_id.to_bytes(8, "big") if parent else None,
                name=span.name,
                kind=_KINDS[span.kind],
                start_time_unix_nano=span.start_time,
                end_time_unix_nano=span.end_time,
                status=self._status(status.status_code, status.description),
                dropped_attributes_count=span.dropped_attributes,
                dropped_events_count=span.dropped_events,
                dropped_links_count=span.dropped_links,
                flags=_HAS_IS_REMOTE | _IS_REMOTE if parent and parent.is_remote else _HAS_IS_REMOTE,
            )
            if span.attributes:
                added.attributes.extend([attribute(k, v) for k, v in span.attributes.items()])
        encoded: bytes = request.SerializePartialToString()
        return encoded

    def _attribute(self, key: str, value: Any) -> KeyValue:
        kind = type(value)
        entry = (key, kind, value)
        message = self._attributes.get(entry)
        if message is None:
            field = _VALUE_FIELDS.get(kind) or _field_of_subclass(value)
            if field is None:
                raise _NotCovered  # arrays, bytes, mappings: the SDK's encoder
            if len(self._attributes) >= ATTRIBUTES_KEPT:
                self._attributes.clear()
            message = self._attributes[entry] = KeyValue(key=key, value=AnyValue(**{field: value}))
        return message

    def _status(self, code: StatusCode, description: str | None) -> Status:
        message = self._statuses.get((code, description))
        if message is None:
            if len(self._statuses) >= ATTRIBUTES_KEPT:
                self._statuses.clear()
            message = self._statuses[(code, description)] = Status(
                code=_CODES[code], message=description or ""
            )
        return message

    def _envelope(self, span: ReadableSpan) -> ResourceSpans:
        """The resource and scope around a batch, as the SDK encodes them (once each)."""
        key = (span.resource, span.instrumentation_scope)
        envelope = self._envelopes.get(key)
        if envelope is None:
            envelope = encode_spans([span]).resource_spans[0]
            del envelope.scope_spans[0].spans[:]
            self._envelopes[key] = envelope
        return envelope


class OtlpSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, encoding with `SpanEncoder`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return super().export(spans)  # the SDK's warning and result
        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = self._encoder.encode(spans)
            except Exception as error:  # a batch that cannot be encoded is dropped, as the SDK does
                _log.error("Failed to encode span batch: %s", type(error).__name__)
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(data):
                _log.warning("Dropping span batch: %d bytes exceed max_request_size", len(data))
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
