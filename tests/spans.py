"""An in-memory span exporter a test can wait on: the root span of a request or call ends after
its last byte went out, so the client can be done first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class SpansUntil(InMemorySpanExporter):
    """Keeps every exported span; `ended()` waits until a span named `name` has been exported.
    For `tracing.enable(..., batch=False)`, which exports on the thread that ends the span: the
    event loop's, where setting an `asyncio.Event` is safe."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._done = asyncio.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        if any(s.name == self._name for s in spans):
            self._done.set()
        return result

    async def ended(self, within: float = 10) -> list[ReadableSpan]:
        """Every span so far, once the awaited one has ended."""
        await asyncio.wait_for(self._done.wait(), within)
        return list(self.get_finished_spans())
