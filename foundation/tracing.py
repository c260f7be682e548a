"""The tracing seam: OpenTelemetry spans when an exporter is installed, nothing at all otherwise.

Every layer starts its spans here (`start`, `end`), never through OpenTelemetry directly, so
tracing that is off costs one global check per call site: no span object is made, no context
is set. `server` installs an exporter once at start-up when `PATCHBAY_OTEL_ENDPOINT` is set
(`enable(otlp_exporter(url), ratio=...)`); tests install an in-memory one.

While a span is open it is a small object of this module (ids, name, start time, attributes),
not the SDK's `Span`: the SDK's costs about 15 µs to start (its attribute, event and link
containers each take a lock), several times what recording needs. When it ends it becomes the
SDK's `ReadableSpan` and goes to the SDK's span processor (batched into the exporter's
background thread), so what reaches a collector is what the SDK would have sent. Only this
seam records spans: nothing is installed as OpenTelemetry's global tracer provider.

Sampling is decided once per trace, at its root, from the trace id (OpenTelemetry's
`TraceIdRatioBased` rule): a trace that is not sampled is one shared `UNSAMPLED` marker that
its children inherit, so it costs no object and no export, and carries no trace id.

Spans are parented through a context variable: `activate` makes a span current for code that
runs in the same frame (never across a `yield`, where a context change would leak to the
consumer); `start(parent=...)` parents a span explicitly across generator boundaries.

Attributes carry ids, names, counts, statuses and error classes only: never prompts, outputs,
transcripts, keys or URLs with query strings (a canary test in tests/foundation pins it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

Attributes = Mapping[str, str | int | float | bool]


class Span:
    """One span being recorded; `end` hands it to the exporter."""

    __slots__ = ("attributes", "error", "kind", "name", "parent_id", "span_id", "start_ns", "trace_id")

    def __init__(
        self, name: str, kind: str, trace_id: int, parent_id: int, attributes: dict[str, Any]
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = random.getrandbits(64) or 1
        self.parent_id = parent_id
        self.attributes = attributes
        self.error: str | None = None
        self.start_ns = time.time_ns()


UNSAMPLED = Span("unsampled", "internal", 0, 0, {})
"""Every span of a trace that its root's sampling decision left out: nothing is recorded."""

_current: ContextVar[Span | None] = ContextVar("patchbay_span", default=None)


class _Recorder:
    """Turns ended spans into the SDK's `ReadableSpan` for its span processor."""

    def __init__(self, processor: SpanProcessor, *, service: str, ratio: float) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        # Kept here, not imported in `export`: an import statement there costs a microsecond
        # a span (and the module stays free of the SDK while tracing is off).
        self.readable_span = ReadableSpan
        self.span_context = SpanContext
        self.status = Status

        self.processor = processor
        self.resource = Resource.create({"service.name": service})
        self.scope = InstrumentationScope("patchbay")
        self.bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        self.low_bits = TraceIdRatioBased.TRACE_ID_LIMIT
        self.kinds = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}
        self.sampled = TraceFlags(TraceFlags.SAMPLED)
        self.unset = Status(StatusCode.UNSET)
        self.error_code = StatusCode.ERROR

    def samples(self, trace_id: int) -> bool:
        """The SDK's `TraceIdRatioBased` rule, without its per-call result objects: the trace id's
        low 64 bits under the ratio's bound."""
        return trace_id & self.low_bits < self.bound

    def export(self, span: Span, end_ns: int) -> None:
        context, flags = self.span_context, self.sampled
        parent = context(span.trace_id, span.parent_id, False, flags) if span.parent_id else None
        error = span.error
        self.processor.on_end(
            self.readable_span(
                name=span.name,
                context=context(span.trace_id, span.span_id, False, flags),
                parent=parent,
                resource=self.resource,
                attributes=span.attributes,
                kind=self.kinds[span.kind],
                status=self.unset if error is None else self.status(self.error_code, error),
                start_time=span.start_ns,
                end_time=end_ns,
                instrumentation_scope=self.scope,
            )
        )


_recorder: _Recorder | None = None


def on() -> bool:
    """Whether tracing is on (some traces may still be left out by sampling)."""
    return _recorder is not None


def recording(parent: Span | None = None) -> bool:
    """Whether a span started now under `parent` (else the current span) may be recorded: call
    sites check this before building a span's attributes. False when tracing is off or the trace
    was left out by sampling; True with no span at all (`start` then decides for a new trace)."""
    if _recorder is None:
        return False
    return (parent or _current.get()) is not UNSAMPLED


def recorded(span: Span | None) -> bool:
    """Whether `span` is being recorded (not None, not `UNSAMPLED`)."""
    return span is not None and span is not UNSAMPLED


def enable(
    exporter: SpanExporter, *, batch: bool = True, service: str = "patchbay", ratio: float = 1.0
) -> None:
    """Record spans into `exporter` from now on, `ratio` of the traces (0 to 1, decided at each
    trace's root). `batch=False` exports each span as it ends (tests); the default batches them
    off the request path in a background thread."""
    global _recorder
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"the sampling ratio is a fraction from 0 to 1, not {ratio}")
    disable()
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    _recorder = _Recorder(processor, service=service, ratio=ratio)


def disable() -> None:
    """Flush and stop recording (the server's shutdown; tests between cases)."""
    global _recorder
    recorder, _recorder = _recorder, None
    if recorder is not None:
        recorder.processor.shutdown()


def flush(timeout_ms: int = 10_000) -> bool:
    """Export every span ended so far (blocking); False if the exporter did not finish in time."""
    recorder = _recorder
    return recorder.processor.force_flush(timeout_ms) if recorder is not None else True


def otlp_exporter(endpoint: str, *, timeout: float = 10.0) -> SpanExporter:
    """OTLP over HTTP (protobuf). `endpoint` is the collector's base URL (`http://otel:4318`)
    or the full traces URL; a base URL gets OTLP's `/v1/traces` path."""
    from urllib.parse import urlsplit

    from foundation.otlp import OtlpSpanExporter

    url = endpoint if urlsplit(endpoint).path.rstrip("/") else endpoint.rstrip("/") + "/v1/traces"
    return OtlpSpanExporter(endpoint=url, timeout=timeout)


def start(
    name: str, *, kind: str = "internal", parent: Span | None = None, attributes: Attributes | None = None
) -> Span | None:
    """A started span (None when tracing is off): a child of `parent` if given, else of the
    current span, else the root of a new trace. End it with `end`."""
    recorder = _recorder
    if recorder is None:
        return None
    if parent is None:
        parent = _current.get()
    if parent is UNSAMPLED:
        return UNSAMPLED
    if parent is None:
        trace_id = random.getrandbits(128) or 1
        if not recorder.samples(trace_id):
            return UNSAMPLED
        return Span(name, kind, trace_id, 0, dict(attributes) if attributes else {})
    return Span(name, kind, parent.trace_id, parent.span_id, dict(attributes) if attributes else {})


def end(span: Span | None, *, error: str | None = None, attributes: Attributes | None = None) -> None:
    """End `span`; `error` (an error class or short code, never a message) marks it failed."""
    recorder = _recorder
    if span is None or span is UNSAMPLED or recorder is None:
        return
    if attributes:
        span.attributes.update(attributes)
    fail(span, error)
    recorder.export(span, time.time_ns())


def fail(span: Span | None, error: str | None) -> None:
    """Mark `span` failed with `error` (an error class or short code, never a message)."""
    if span is None or span is UNSAMPLED or error is None:
        return
    span.attributes["error.type"] = error
    span.error = error


def step(name: str, attributes: Attributes | None = None) -> AbstractContextManager[Span | None]:
    """`with tracing.step("voice.llm") as span:` a span current for the block (in a coroutine or
    plain function, not around a `yield`); an exception marks it failed with its type's name.
    Off, or in a trace left out by sampling: one shared do-nothing context, `span` None."""
    if _recorder is None or _current.get() is UNSAMPLED:
        return _OFF  # inside a trace left out, the current span stays the marker
    return _step(name, attributes)


@contextmanager
def _step(name: str, attributes: Attributes | None) -> Iterator[Span | None]:
    span = start(name, attributes=attributes)
    token = activate(span)
    error: str | None = None
    try:
        yield span
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        deactivate(token)
        end(span, error=error)


_OFF: AbstractContextManager[None] = nullcontext()


def set_attributes(span: Span | None, attributes: Attributes) -> None:
    if span is not None and span is not UNSAMPLED:
        span.attributes.update(attributes)


def activate(span: Span | None) -> Token[Span | None] | None:
    """Make `span` current until `deactivate(token)`, in the same frame (not across a `yield`)."""
    if span is None:
        return None
    return _current.set(span)


def deactivate(token: Token[Span | None] | None) -> None:
    if token is not None:
        _current.reset(token)


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None when tracing is off, no span is current
    or the trace is not sampled."""
    if _recorder is None:
        return None
    return trace_id_of(_current.get())


def trace_id_of(span: Span | None) -> str | None:
    if span is None or span is UNSAMPLED:
        return None
    return format(span.trace_id, "032x")
