"""The Prometheus metrics every layer counts into: one definition each, below every package.

Each package records through the small functions here (a counter increment, a histogram
observation), so the request path pays a dict lookup and prometheus-client's own value lock
and nothing else (the per-request hooks add to a child's value directly: `_adder`). Labels take values from closed sets only (route templates, provider ids,
wire protocols, error classes, reason families, billing sources, segments): never a prompt,
a key, an org id or a raw path. Every metric and its labels is listed in docs/metrics.md.

Several workers: `patchbay serve --workers N` sets `PROMETHEUS_MULTIPROC_DIR` before the
workers start (`server.serve`), and prometheus-client then keeps every value in a file per
process that `/metrics` sums (`server.metrics`). Gauges sum the live processes only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

# Seconds: the gateway adds ~1 ms, upstreams take up to minutes.
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Milliseconds after the end of speech: voice turns live between 200 ms and a few seconds.
_TURN_BUCKETS_MS = (50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)

HTTP_REQUESTS = Counter(
    "patchbay_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "patchbay_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template.",
    ["route"],
    buckets=_REQUEST_BUCKETS,
)
UPSTREAM_ATTEMPTS = Counter(
    "patchbay_upstream_attempts",
    "Upstream attempts by provider, wire protocol, outcome (served, failed, failed_after_output) "
    "and error class (empty when served).",
    ["provider", "protocol", "outcome", "error_class"],
)
FALLBACKS = Counter(
    "patchbay_fallbacks",
    "Failed attempts the runner moved past to the next candidate, by error class.",
    ["reason"],
)
SKIPS = Counter(
    "patchbay_skips",
    "Candidates skipped before any call, by reason family (cooldown, disabled, capability, ...).",
    ["reason"],
)
COOLDOWN_TRANSITIONS = Counter(
    "patchbay_cooldown_transitions",
    "Failures that left an auth profile blocked, by lane (cooldown, disabled) and error class.",
    ["lane", "reason"],
)
TOKENS = Counter(
    "patchbay_tokens",
    "Tokens in settled usage segments, by billing source, segment and direction (input, output).",
    ["billing_source", "segment", "direction"],
)
COST = Counter(
    "patchbay_cost_micro_usd",
    "What orgs were charged (micro-USD) for settled usage segments, by billing source and segment.",
    ["billing_source", "segment"],
)
VOICE_SESSIONS = Gauge(
    "patchbay_voice_sessions_active",
    "Realtime voice sessions admitted and not yet released.",
    multiprocess_mode="livesum",
)
TURN_LATENCY = Histogram(
    "patchbay_voice_turn_since_speech_end_ms",
    "Voice turn milestones in ms after the end of speech (transcript, llm_first_token, "
    "tts_first_byte, first_audio).",
    ["step"],
    buckets=_TURN_BUCKETS_MS,
)
LATE_FRAMES = Counter(
    "patchbay_voice_late_frames",
    "Output frames dropped because their response was cancelled (barge-in) before they went out.",
)
VOICE_DRAIN_CLOSES = Counter(
    "patchbay_voice_drain_closes",
    "Realtime sessions a draining worker closed with 1012, by how: quiet (a resuming client's "
    "session, at its first quiet moment) or deadline (still open when the drain ran out).",
    ["how"],
)
TWILIO_STREAMS_DROPPED = Counter(
    "patchbay_twilio_streams_dropped",
    "Twilio media streams whose connection closed without Twilio's stop, by outcome: "
    "handed_over (the call's redirect resumes it) or ended (nothing to resume it with).",
    ["outcome"],
)
TWILIO_CHECKPOINTS = Counter(
    "patchbay_twilio_checkpoints",
    "Phone calls' checkpoints a worker wrote, by outcome: written, or failed (the database "
    "refused the batch; retried at the next flush).",
    ["outcome"],
)
LEASES_OPEN = Gauge(
    "patchbay_ledger_leases_open",
    "Credit leases (ledger holds a process draws on) open and not yet released.",
    multiprocess_mode="livesum",
)
COOLDOWN_NOTICES = Counter(
    "patchbay_cooldown_notices",
    "Cooldown notices from other replicas this process applied (its copy of the profile dropped).",
)
UPSTREAM_TAILS = Counter(
    "patchbay_upstream_tails",
    "Finished upstream streams whose last bytes were read behind the caller, by outcome: pooled "
    "(the body ended and the connection was released for reuse) or dropped (it did not end in "
    "time or size).",
    ["outcome"],
)
UPSTREAM_CONNECTIONS_OPENED = Counter(
    "patchbay_upstream_connections_opened",
    "New upstream connections (TCP, and TLS for https) Patchbay's own HTTP client opened; a call "
    "that finds a kept connection opens none.",
)
UPSTREAM_CONNECTION_WAITS = Counter(
    "patchbay_upstream_connection_waits",
    "Upstream calls that found every one of their worker's connections to the origin busy and "
    "waited, by provider and outcome: served (one came free in time) or timed_out (the call "
    "failed without reaching the upstream).",
    ["provider", "outcome"],
)
BUFFERED_ENTRIES = Counter(
    "patchbay_buffered_entries",
    "Entries of a write-behind buffer (usage, request_log, vault-audit), by outcome: written, or "
    "dropped because the buffer was full.",
    ["buffer", "outcome"],
)
BUFFERED_WRITE_FAILURES = Counter(
    "patchbay_buffered_write_failures",
    "Batches a write-behind buffer failed to write (its entries kept for the next try), by buffer.",
    ["buffer"],
)
BUFFERED_PENDING = Gauge(
    "patchbay_buffered_entries_pending",
    "Entries a write-behind buffer holds, as of its last write or attempt (summed over live workers).",
    ["buffer"],
    multiprocess_mode="livesum",
)
CACHE_HITS = Counter(
    "patchbay_cache_hits",
    "Lookups an in-memory cache answered, by cache (org, api_key).",
    ["cache"],
)
CACHE_MISSES = Counter(
    "patchbay_cache_misses",
    "Lookups an in-memory cache could not answer (a database read follows), by cache.",
    ["cache"],
)
CACHE_EVICTIONS = Counter(
    "patchbay_cache_evictions",
    "Entries a full cache dropped to make room (least recently used first), by cache.",
    ["cache"],
)
CACHE_ENTRIES = Gauge(
    "patchbay_cache_entries",
    "Entries an in-memory cache holds now, by cache (summed over live workers).",
    ["cache"],
    multiprocess_mode="livesum",
)


Add = Callable[[float], None]


def _adder(child: Counter) -> Add:
    """The `inc` of a labelled child's value. A child's own `inc` first checks that it is a
    labelled child and the amount is not negative, a few calls per increment; the hot hooks
    below pass amounts that are never negative, so they add to the value directly (the same
    value and lock, in memory or in the multiprocess files: /metrics reads the same)."""
    inc: Add = child._value.inc
    return inc


class _Timing:
    """A labelled histogram child's `observe`, by the same direct path as `_adder`."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._sum: Add = child._sum.inc
        self._buckets: list[Add] = [bucket.inc for bucket in child._buckets]
        self._bounds: Sequence[float] = child._upper_bounds  # ascending, +Inf last

    def observe(self, amount: float) -> None:
        self._sum(amount)
        self._buckets[bisect_left(self._bounds, amount)](1)  # the first bound >= amount


# Labelled children, cached: `labels()` validates and takes a lock on every call; the label
# values are from closed sets, so these caches stay small.
@cache
def _http(method: str, route: str, status: int) -> tuple[Add, _Timing]:
    return _adder(HTTP_REQUESTS.labels(method, route, str(status))), _Timing(HTTP_LATENCY.labels(route))


@cache
def _counter(metric: Counter, *labels: str) -> Add:
    return _adder(metric.labels(*labels))


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    count, timing = _http(method, route, status)
    count(1)
    timing.observe(seconds)


def observe_attempt(provider: str, protocol: str, outcome: str, error_class: str = "") -> None:
    _counter(UPSTREAM_ATTEMPTS, provider, protocol, outcome, error_class)(1)


def observe_fallback(error_class: str) -> None:
    FALLBACKS.labels(error_class).inc()


def observe_skip(reason: str) -> None:
    """`reason` is a skip's detail (`cooldown:rate_limit`); only its family is a label."""
    SKIPS.labels(reason.partition(":")[0] or "unknown").inc()


def observe_cooldown(lane: str, error_class: str) -> None:
    COOLDOWN_TRANSITIONS.labels(lane, error_class).inc()


def observe_cooldown_notice() -> None:
    COOLDOWN_NOTICES.inc()


def observe_tail(pooled: bool) -> None:
    _counter(UPSTREAM_TAILS, "pooled" if pooled else "dropped")(1)


def observe_connection_opened() -> None:
    UPSTREAM_CONNECTIONS_OPENED.inc()


def observe_connection_wait(provider: str, outcome: str) -> None:
    _counter(UPSTREAM_CONNECTION_WAITS, provider, outcome)(1)


def observe_usage(
    billing_source: str, segment: str, input_tokens: int, output_tokens: int, cost: int
) -> None:
    if input_tokens > 0:
        _counter(TOKENS, billing_source, segment, "input")(input_tokens)
    if output_tokens > 0:
        _counter(TOKENS, billing_source, segment, "output")(output_tokens)
    if cost > 0:
        _counter(COST, billing_source, segment)(cost)


def observe_buffer(buffer: str, *, written: int = 0, failed: bool = False, pending: int) -> None:
    """A write-behind buffer's write or attempt (`buffer` is the writer's fixed name)."""
    if written:
        _counter(BUFFERED_ENTRIES, buffer, "written")(written)
    if failed:
        _counter(BUFFERED_WRITE_FAILURES, buffer)(1)
    BUFFERED_PENDING.labels(buffer).set(pending)


def observe_buffer_drop(buffer: str) -> None:
    _counter(BUFFERED_ENTRIES, buffer, "dropped")(1)


def observe_turn(since_speech_end_ms: dict[str, float | None]) -> None:
    for step, value in since_speech_end_ms.items():
        if value is not None:
            TURN_LATENCY.labels(step).observe(value)


class CacheCounters:
    """One cache's labelled children, bound once: the hot path pays an `inc` and nothing else."""

    __slots__ = ("_counted", "_entries", "_evictions", "_hits", "_misses")

    def __init__(self, name: str | None) -> None:
        self._counted = name is not None
        if name is None:
            return
        self._hits = _adder(CACHE_HITS.labels(name))
        self._misses = _adder(CACHE_MISSES.labels(name))
        self._evictions = _adder(CACHE_EVICTIONS.labels(name))
        self._entries = CACHE_ENTRIES.labels(name)

    def hit(self) -> None:
        if self._counted:
            self._hits(1)

    def miss(self) -> None:
        if self._counted:
            self._misses(1)

    def evicted(self) -> None:
        if self._counted:
            self._evictions(1)

    def entries(self, count: int) -> None:
        if self._counted:
            self._entries.set(count)


NOT_COUNTED = CacheCounters(None)
"""For a cache that counts nothing."""


@cache
def cache_counters(name: str) -> CacheCounters:
    """`name` is a cache's fixed name (`org`, `api_key`), never data."""
    return CacheCounters(name)
