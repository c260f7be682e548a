"""A tiny OpenTelemetry collector: accepts OTLP/HTTP trace exports (protobuf POSTs to `/v1/traces`)
and keeps the decoded requests, so a test sees exactly what crossed the wire.

Serve it with `ServedApp(OtlpCollector())`; `spans()` has every exported span so far, by name.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.emulators.harness import read_body


class OtlpCollector:
    def __init__(self, *, keep: bool = True) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        """False: count the spans and drop them (a benchmark's long runs)."""
        self.exports: list[ExportTraceServiceRequest] = []
        self.span_count = 0
        self.refused: list[str] = []
        """Requests that were not a protobuf POST to /v1/traces (path and content type)."""
        self.headers: dict[str, str] = {}
        """The last export's request headers (lower-case names)."""

    def spans(self) -> dict[str, Span]:
        """The last exported span of each name."""
        with self._lock:
            return {
                span.name: span
                for export in self.exports
                for resource in export.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive)
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        ctype = headers.get("content-type", "")
        if scope["method"] != "POST" or scope["path"] != "/v1/traces" or ctype != "application/x-protobuf":
            with self._lock:
                self.refused.append(f"{scope['method']} {scope['path']} {ctype}")
            await _answer(send, 404, b"")
            return
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        received = sum(len(s.spans) for resource in export.resource_spans for s in resource.scope_spans)
        with self._lock:
            self.headers = headers
            self.span_count += received
            if self._keep:
                self.exports.append(export)
        await _answer(send, 200, ExportTraceServiceResponse().SerializeToString())


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/x-protobuf"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
