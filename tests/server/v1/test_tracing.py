"""Traces of one chat request through a real Patchbay and real emulators: HTTP → plan → attempt →
upstream spans with the right parents, one attempt per fallback, the trace id in the
`x-patchbay-trace-id` header and on the log lines, and no prompt or key in any span."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from foundation import tracing
from server.logs import JsonFormatter, configure_logging
from tests.emulators.openai_errors import rate_limited
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams
from tests.spans import SpansUntil

PROMPT_CANARY = "CANARY-PROMPT-7f3e9a-never-in-a-span"
CHAT = {"model": "default", "messages": [{"role": "user", "content": PROMPT_CANARY}]}
HTTP_SPAN = "POST /v1/chat/completions"


@pytest.fixture
def spans() -> Iterator[SpansUntil]:
    exporter = SpansUntil(HTTP_SPAN)
    tracing.enable(exporter, batch=False)
    yield exporter
    tracing.disable()


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _children(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.name == name and _parent_id(s) == _span_id(parent)),
        key=lambda s: s.start_time or 0,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_one_chat_request_is_http_then_plan_then_attempt_then_upstream(
    patchbay: Patchbay, spans: SpansUntil, stream: bool
) -> None:
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert response.status_code == 200
    recorded = await spans.ended()
    http = _one(recorded, HTTP_SPAN)
    assert http.parent is None and http.kind.name == "SERVER"
    plan = _one(recorded, "routing.plan")
    attempt = _one(recorded, "routing.attempt")
    upstream = _one(recorded, "upstream openai")
    assert _parent_id(plan) == _span_id(http)
    assert _parent_id(attempt) == _span_id(plan)
    assert _parent_id(upstream) == _span_id(attempt)
    assert upstream.kind.name == "CLIENT" and upstream.attributes is not None
    assert upstream.attributes["http.response.status_code"] == 200
    assert http.context is not None
    assert {s.context.trace_id for s in recorded if s.context} == {http.context.trace_id}
    # The header names the same trace.
    assert response.headers["x-patchbay-trace-id"] == format(http.context.trace_id, "032x")
    assert plan.attributes is not None and plan.attributes["patchbay.served"] == "openai:main/gpt-4o-mini"


async def test_a_fallback_is_two_attempts_each_with_its_upstream_call(
    patchbay: Patchbay, upstreams: Upstreams, spans: SpansUntil
) -> None:
    upstreams.openai.always(rate_limited(30))
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    recorded = await spans.ended()
    plan = _one(recorded, "routing.plan")
    first, second = _children(recorded, plan, "routing.attempt")
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["patchbay.profile"] == "openai:main"
    assert first.attributes["error.type"] == "rate_limit" and first.status.status_code.name == "ERROR"
    assert second.attributes["patchbay.profile"] == "mistral:default"
    assert "error.type" not in second.attributes
    assert [s.name for s in _children(recorded, first, "upstream openai")] == ["upstream openai"]
    assert len(_children(recorded, second, "upstream mistral")) == 1
    assert plan.attributes is not None and plan.attributes["patchbay.attempts"] == 2


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The server's JSON log lines as `patchbay serve` writes them, at INFO."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("INFO", out)
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


async def test_the_access_log_line_carries_the_trace_id(
    patchbay: Patchbay, spans: SpansUntil, log_lines: io.StringIO
) -> None:
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    await spans.ended()
    lines = [orjson.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [
        e for e in lines if e.get("logger") == "patchbay.access" and e.get("path") == "/v1/chat/completions"
    ]
    assert len(access) == 1
    assert access[0]["trace_id"] == response.headers["x-patchbay-trace-id"]
    assert access[0]["request_id"] == response.headers["x-request-id"]


async def test_tracing_off_adds_no_header_and_no_log_field(
    patchbay: Patchbay, log_lines: io.StringIO
) -> None:
    assert not tracing.on()
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and "x-patchbay-trace-id" not in response.headers
    assert all("trace_id" not in orjson.loads(line) for line in log_lines.getvalue().splitlines())


async def test_a_trace_left_out_by_sampling_records_nothing_and_names_no_trace(
    patchbay: Patchbay, log_lines: io.StringIO
) -> None:
    exporter = SpansUntil(HTTP_SPAN)
    tracing.enable(exporter, batch=False, ratio=0.0)
    try:
        async with patchbay.client() as c:
            complete = await c.post("/v1/chat/completions", json=CHAT)
            streamed = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert tracing.on()
    finally:
        tracing.disable()  # flushes: any span ended by now has reached the exporter
    assert complete.status_code == streamed.status_code == 200
    assert exporter.get_finished_spans() == ()
    assert "x-patchbay-trace-id" not in complete.headers and "x-patchbay-trace-id" not in streamed.headers
    assert all("trace_id" not in orjson.loads(line) for line in log_lines.getvalue().splitlines())


async def test_no_span_carries_the_prompt_or_a_key(
    patchbay: Patchbay, upstreams: Upstreams, spans: SpansUntil
) -> None:
    # A fallback too: error paths are where a message quoting the request would slip in.
    upstreams.openai.always(rate_limited(30))
    async with patchbay.client() as c:
        await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    recorded = await spans.ended()
    assert len(recorded) >= 5
    text = "\n".join(s.to_json() for s in recorded)
    for canary in (PROMPT_CANARY, *CANARIES, patchbay.key):
        assert canary not in text


def test_json_formatter_leaves_trace_id_out_when_tracing_is_off() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
    assert "trace_id" not in orjson.loads(JsonFormatter().format(record))
