"""Spans to an OpenTelemetry collector over OTLP/HTTP: the SDK's exporter sends, this module encodes.

The SDK's encoder builds two protobuf messages for every attribute of every span (a `KeyValue`
and its `AnyValue`): about 20 µs a span for a chat request's spans, which made encoding most of
what tracing costs a request. `SpanEncoder` writes each span's protobuf fields itself, in the
order protobuf serialises them, and reuses the serialised bytes of what repeats (an attribute's
key and value, a status, a name, the resource and scope around the batch; bounded tables, each
made by protobuf itself): about 3.7 µs a span, against 6 µs when it still built a message per
span (docs/performance.md, "Spans written as protobuf bytes"). The bytes are the SDK encoder's
own (tests encode the same spans both ways, including random ones, and compare them); a batch
this encoder does not cover (events, links, array values, several resources) is encoded by the
SDK's.

`OtlpSpanExporter` is the SDK's `OTLPSpanExporter` with only the encoding replaced: endpoint,
headers, compression, TLS, timeouts and retries stay the SDK's, with its `OTEL_EXPORTER_OTLP_*`
settings. It reaches into the exporter's client, so the SDK's version is pinned in
constraints.txt and tests/foundation/test_otlp.py exports through it to a collector.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, SpanFlags, Status
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
"""Entries each table of serialised bytes (attributes, statuses, names) keeps for reuse; past
it the table starts again (ids and counts that never repeat only cost their own bytes)."""


def _field_of_subclass(value: object) -> str | None:
    """A `StrEnum` or `IntEnum` member is encoded as its base type, as the SDK does."""
    for base in (bool, str, int, float):
        if isinstance(value, base):
            return _VALUE_FIELDS[base]
    return None


class _NotCovered(Exception):
    """A batch this encoder leaves to the SDK's."""


_FIXED64 = struct.Struct("<Q").pack
_ONE_BYTE = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if n < 128:
        return _ONE_BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length, its bytes."""
    return tag + _varint(len(payload)) + payload


# Each span field's tag byte(s): (field number << 3) | wire type (OTLP's trace.proto `Span`).
_KIND_FIELDS = {kind: b"\x30" + _varint(value) for kind, value in _KINDS.items()}
_LOCAL_FLAGS = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE)
_REMOTE_FLAGS = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)


def _keep(table: dict[Any, bytes], key: Any, encoded: bytes) -> bytes:
    """Keep `encoded` in `table` under `key` and return it; a full table starts again first."""
    if len(table) >= ATTRIBUTES_KEPT:
        table.clear()
    table[key] = encoded
    return encoded


def _present(kind: Any, message: Any, name: str) -> bytes:
    """`message`'s field `name` alone, as `kind` serialises it (nothing when it is not set)."""
    if not message.HasField(name):
        return b""
    encoded: bytes = kind(**{name: getattr(message, name)}).SerializePartialToString()
    return encoded


class SpanEncoder:
    """`ReadableSpan`s to the bytes of one OTLP `ExportTraceServiceRequest`.

    Each span is written field by field, in field-number order as protobuf serialises them;
    what repeats (an attribute, a status, a name, the resource and scope around the batch) is
    serialised once by protobuf itself and its bytes reused."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, object], bytes] = {}
        self._statuses: dict[tuple[StatusCode, str | None], bytes] = {}
        self._names: dict[str, bytes] = {}
        self._envelopes: dict[tuple[object, object], tuple[bytes, bytes, bytes, bytes]] = {}

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
        resource_head, scope_head, scope_tail, resource_tail = self._envelope(first)
        encoded = [scope_head]
        for span in spans:
            if span.resource is not resource or span.instrumentation_scope is not scope:
                raise _NotCovered
            if span.events or span.links:
                raise _NotCovered
            body = self._span(span)
            encoded.append(b"\x12" + _varint(len(body)) + body)  # ScopeSpans.spans
        encoded.append(scope_tail)
        scope_spans = _field(b"\x12", b"".join(encoded))  # ResourceSpans.scope_spans
        return _field(b"\x0a", resource_head + scope_spans + resource_tail)  # resource_spans

    def _span(self, span: ReadableSpan) -> bytes:
        context, parent, status = span.context, span.parent, span.status
        parts = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state:
            parts.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in state.items()).encode()))
        if parent:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts.append(self._name(span.name))
        parts.append(_KIND_FIELDS[span.kind])
        if span.start_time:
            parts.append(b"\x39" + _FIXED64(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _FIXED64(span.end_time))
        if span.attributes:
            attribute = self._attribute
            parts += [attribute(k, v) for k, v in span.attributes.items()]
        for tag, count in (
            (b"\x50", span.dropped_attributes),
            (b"\x60", span.dropped_events),
            (b"\x70", span.dropped_links),
        ):
            if count:
                parts.append(tag + _varint(count))
        parts.append(self._status(status.status_code, status.description))
        parts.append(_REMOTE_FLAGS if parent and parent.is_remote else _LOCAL_FLAGS)
        return b"".join(parts)

    def _attribute(self, key: str, value: Any) -> bytes:
        """The attribute as a span's field (`Span.attributes`), serialised once per key and value."""
        kind = type(value)
        entry = (key, kind, value)
        encoded = self._attributes.get(entry)
        if encoded is None:
            field = _VALUE_FIELDS.get(kind) or _field_of_subclass(value)
            if field is None:
                raise _NotCovered  # arrays, bytes, mappings: the SDK's encoder
            message = KeyValue(key=key, value=AnyValue(**{field: value}))
            encoded = _keep(
                self._attributes, entry, ProtoSpan(attributes=[message]).SerializePartialToString()
            )
        return encoded

    def _status(self, code: StatusCode, description: str | None) -> bytes:
        encoded = self._statuses.get((code, description))
        if encoded is None:
            status = Status(code=_CODES[code], message=description or "")
            encoded = _keep(
                self._statuses, (code, description), ProtoSpan(status=status).SerializePartialToString()
            )
        return encoded

    def _name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            encoded = _keep(self._names, name, ProtoSpan(name=name).SerializePartialToString())
        return encoded

    def _envelope(self, span: ReadableSpan) -> tuple[bytes, bytes, bytes, bytes]:
        """What goes around a batch's spans, as the SDK encodes it (once per resource and
        scope): the resource before its scope spans and the schema URL after them, the scope
        before the spans and its schema URL after them."""
        key = (span.resource, span.instrumentation_scope)
        envelope = self._envelopes.get(key)
        if envelope is None:
            resource_spans = encode_spans([span]).resource_spans[0]
            scope_spans = resource_spans.scope_spans[0]
            envelope = self._envelopes[key] = (
                _present(ResourceSpans, resource_spans, "resource"),
                _present(ScopeSpans, scope_spans, "scope"),
                ScopeSpans(schema_url=scope_spans.schema_url).SerializePartialToString(),
                ResourceSpans(schema_url=resource_spans.schema_url).SerializePartialToString(),
            )
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
