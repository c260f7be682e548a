"""The tracing seam: OpenTelemetry spans when an exporter is installed, nothing at all otherwise.

Every layer starts its spans here (`start`, `end`), never through OpenTelemetry directly, so
tracing that is off costs one global check per call site: no tracer provider exists, no span
object is made, no context is attached. `server` installs an exporter once at start-up when
`PATCHBAY_OTEL_ENDPOINT` is set (`enable(otlp_exporter(url))`); tests install an in-memory one.

Spans are parented through OpenTelemetry's context: `activate` makes a span current for code
that runs in the same frame (never across a `yield`, where a context change would leak to the
consumer); `start(parent=...)` parents a span explicitly across generator boundaries.

Attributes carry ids, names, counts, statuses and error classes only: never prompts, outputs,
transcripts, keys or URLs with query strings (a canary test in tests/foundation pins it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as Span
    from opentelemetry.trace import Tracer

Attributes = Mapping[str, str | int | float | bool]

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def on() -> bool:
    """Whether spans are being recorded; call sites that build attributes check this first."""
    return _tracer is not None


def enable(exporter: SpanExporter, *, batch: bool = True, service: str = "patchbay") -> None:
    """Record spans into `exporter` from now on. `batch=False` exports each span as it ends
    (tests); the default batches them off the request path in a background thread."""
    global _tracer, _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    disable()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    # Not installed as OpenTelemetry's global provider: only this seam's tracer records.
    _provider, _tracer = provider, provider.get_tracer("patchbay")


def disable() -> None:
    """Flush and stop recording (the server's shutdown; tests between cases)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 10_000) -> bool:
    """Export every span ended so far (blocking); False if the exporter did not finish in time."""
    provider = _provider
    return provider.force_flush(timeout_ms) if provider is not None else True


def otlp_exporter(endpoint: str, *, timeout: float = 10.0) -> SpanExporter:
    """OTLP over HTTP (protobuf). `endpoint` is the collector's base URL (`http://otel:4318`)
    or the full traces URL; a base URL gets OTLP's `/v1/traces` path."""
    from urllib.parse import urlsplit

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = endpoint if urlsplit(endpoint).path.rstrip("/") else endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=url, timeout=timeout)


def start(
    name: str, *, kind: str = "internal", parent: Span | None = None, attributes: Attributes | None = None
) -> Span | None:
    """A started span (None when tracing is off): a child of `parent` if given, else of the
    current span. End it with `end`."""
    tracer = _tracer
    if tracer is None:
        return None
    from opentelemetry import trace

    context = trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(name, context=context, kind=_KINDS[kind], attributes=attributes)


def end(span: Span | None, *, error: str | None = None, attributes: Attributes | None = None) -> None:
    """End `span`; `error` (an error class or short code, never a message) marks it failed."""
    if span is None:
        return
    if attributes:
        span.set_attributes(attributes)
    fail(span, error)
    span.end()


def fail(span: Span | None, error: str | None) -> None:
    """Mark `span` failed with `error` (an error class or short code, never a message)."""
    if span is None or error is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error)
    span.set_status(Status(StatusCode.ERROR, error))


def step(name: str, attributes: Attributes | None = None) -> AbstractContextManager[Span | None]:
    """`with tracing.step("voice.llm") as span:` a span current for the block (in a coroutine or
    plain function, not around a `yield`); an exception marks it failed with its type's name.
    Off: one shared do-nothing context, `span` None."""
    if _tracer is None:
        return _OFF
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
    if span is not None:
        span.set_attributes(attributes)


def activate(span: Span | None) -> object | None:
    """Make `span` current until `deactivate(token)`, in the same frame (not across a `yield`)."""
    if span is None:
        return None
    from opentelemetry import context, trace

    return context.attach(trace.set_span_in_context(span))


def deactivate(token: object | None) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None when tracing is off or no span is current."""
    if _tracer is None:
        return None
    return trace_id_of(_current())


def trace_id_of(span: Span | None) -> str | None:
    if span is None:
        return None
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _current() -> Span:
    from opentelemetry import trace

    return trace.get_current_span()


def _kinds() -> dict[str, Any]:
    from opentelemetry.trace import SpanKind

    return {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}


class _LazyKinds(dict[str, Any]):
    """`SpanKind` by name, imported on first use so tracing that is off imports nothing."""

    def __missing__(self, key: str) -> Any:
        self.update(_kinds())
        return self[key]


_KINDS = _LazyKinds()
