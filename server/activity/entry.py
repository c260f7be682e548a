"""One request as the request path sees it: a mutable record, cheap to fill, turned into a row later.

The request path only stores references and small values on a `RequestEntry` (the caller's ids,
the model asked, the routed call or its trace, the status); `row_values` builds the
`request_log` columns (the trace as JSON, the serving connection, tokens, content) when the
writer flushes, off the request path. When the request ends, `finish` keeps only the routed
call's trace and usage, and the content only if it is to be logged.

Content (the request's messages and the completion) is kept only when `content` is True, which
the recorder sets from the org's content-logging flag; each side is cut at `CONTENT_LIMIT` bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Table

from foundation.buffered import RowValues
from providers.types import ChatRequest, RefusalDelta, TextDelta, TextPart, ToolCallDone, Usage
from routing.trace import AttemptTrace, Outcome
from server.activity.table import RequestLogRow

CONTENT_LIMIT = 32 * 1024
"""Bytes kept of each side of a request's content (UTF-8, cut on a character boundary)."""

CLIENT_GONE = 499
"""The status of a request whose caller went away before any response was sent (nginx's code)."""

_TABLE: Table = RequestLogRow.__table__  # type: ignore[assignment]


class Routed(Protocol):
    """A routed call as it runs (`routing.router.RoutedCall`): its trace and usage so far."""

    @property
    def trace(self) -> AttemptTrace: ...

    @property
    def usage(self) -> Usage | None: ...


def cut(text: str) -> str:
    """`text` cut to at most `CONTENT_LIMIT` bytes of UTF-8, on a character boundary."""
    if len(text) <= CONTENT_LIMIT // 4:
        return text
    data = text.encode()
    return text if len(data) <= CONTENT_LIMIT else data[:CONTENT_LIMIT].decode("utf-8", "ignore")


def messages_json(request: ChatRequest) -> str:
    """The request's messages as compact JSON: roles, text, tool calls; `[image]`, `[audio]` for media."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        item: dict[str, Any] = {
            "role": message.role.value,
            "content": "".join(p.text if isinstance(p, TextPart) else f"[{p.type}]" for p in message.content),
        }
        if message.tool_calls:
            item["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in message.tool_calls]
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return orjson.dumps(out).decode()


class Completion:
    """The completion text of a stream, gathered event by event up to `CONTENT_LIMIT`."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def add(self, event: object) -> None:
        if isinstance(event, TextDelta | RefusalDelta):
            self.add_text(event.text)
        elif isinstance(event, ToolCallDone):
            self.add_tool_call(event.call.name, event.call.arguments)

    def add_text(self, text: str) -> None:
        if self._size <= CONTENT_LIMIT:
            self._parts.append(text)
            self._size += len(text)

    def add_tool_call(self, name: str, arguments: str) -> None:
        self.add_text(orjson.dumps({"tool_call": {"name": name, "arguments": arguments}}).decode())

    def text(self) -> str:
        return "".join(self._parts)


class RequestEntry:
    """What one request did, filled in as it runs. Unset fields stay None."""

    __slots__ = (
        "at",
        "call",
        "completed",
        "completion",
        "content",
        "content_logging",
        "error_class",
        "error_code",
        "failed",
        "key_id",
        "latency_ms",
        "model",
        "org_id",
        "agent_id",
        "prompt",
        "request_id",
        "started",
        "status",
        "surface",
        "trace",
        "turn_id",
        "usage",
    )

    def __init__(
        self,
        surface: str,
        *,
        request_id: str | None = None,
        content_logging: Callable[[str], bool] | None = None,
    ) -> None:
        self.surface = surface
        self.content_logging = content_logging
        """Whether an org logs content (its in-memory flag); None: never."""
        self.at = time.time()
        self.started = time.perf_counter()
        self.request_id = request_id
        self.turn_id: str | None = None
        self.org_id: str | None = None
        """Set once a valid key names the org; an entry without one is not logged."""
        self.key_id: str | None = None
        self.agent_id: str | None = None
        self.model: str | None = None
        self.status = 0
        self.completed = False
        """The response (or session, or turn) ran to its end; else the caller went away first."""
        self.failed = False
        """An error reached the caller after a 200 (a stream's error event, a failed turn)."""
        self.error_code: str | None = None
        self.error_class: str | None = None
        self.call: Routed | None = None
        self.trace: AttemptTrace | None = None
        self.usage: Usage | None = None
        self.latency_ms: float | None = None
        self.content = False
        self.prompt: ChatRequest | str | None = None
        """The request's content, kept by reference; serialised only when `content` is True."""
        self.completion: Completion | str | None = None

    def wants_content(self) -> bool:
        """Whether to keep this request's content: its org turned content logging on."""
        flag, org_id = self.content_logging, self.org_id
        return flag is not None and org_id is not None and flag(org_id)

    def finish(self) -> None:
        """The request is over: take the latency, and let go of everything the row does not need.

        The entry waits up to a flush interval in the writer's buffer; holding the routed call
        (its request, stream and plan) or an unlogged prompt that long would keep every
        request's objects alive, and in the garbage collector's way, for that second."""
        self.latency_ms = (time.perf_counter() - self.started) * 1000
        if self.status == 0:
            self.status = CLIENT_GONE
        call = self.call
        if call is not None:
            self.call = None
            if self.trace is None:
                self.trace = call.trace
            if self.usage is None:
                self.usage = call.usage
        if not self.content:
            self.prompt = self.completion = None

    @property
    def outcome(self) -> str:
        if self.status == CLIENT_GONE and not self.failed:
            return "cancelled"
        if self.failed or self.status >= 400:
            return "error"
        return "ok" if self.completed else "cancelled"

    def row_values(self) -> RowValues:
        """The `request_log` values (see `foundation.buffered`); runs in the writer, not on the request."""
        call = self.call
        trace = self.trace if self.trace is not None else (call.trace if call is not None else None)
        usage = self.usage if self.usage is not None else (call.usage if call is not None else None)
        served = trace.served if trace is not None else None
        outcome = self.outcome
        error_class = self.error_class
        if error_class is None and outcome == "error" and trace is not None:
            error_class = _last_failure(trace)
        prompt, completion = (self.prompt, self.completion) if self.content else (None, None)
        return _TABLE, {
            "org_id": self.org_id,
            "created_at": datetime.fromtimestamp(self.at, UTC),
            "request_id": self.request_id,
            "turn_id": self.turn_id,
            "api_key_id": self.key_id,
            "agent_id": self.agent_id,
            "surface": self.surface,
            "model": self.model[:255] if self.model else self.model,
            "intent": (trace.intent or None) if trace is not None else None,
            "route": trace.to_dict() if trace is not None and (trace.entries or trace.source) else None,
            "connection": served.profile_id if served is not None else None,
            "served_model": served.ref[:255] if served is not None else None,
            "billing_source": served.billing_source.value if served and served.billing_source else None,
            "status": self.status,
            "outcome": outcome,
            "error_type": self.error_code[:64] if self.error_code else None,
            "error_class": error_class,
            "latency_ms": round(self.latency_ms, 3) if self.latency_ms is not None else None,
            "input_tokens": usage.input_tokens if usage is not None else None,
            "output_tokens": usage.output_tokens if usage is not None else None,
            "content_request": _content(prompt),
            "content_response": _content(completion),
        }

    def to_row(self) -> RequestLogRow:
        return RequestLogRow(**self.row_values()[1])


def _content(value: ChatRequest | Completion | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, ChatRequest):
        return cut(messages_json(value))
    return cut(value.text() if isinstance(value, Completion) else value)


def _last_failure(trace: AttemptTrace) -> str | None:
    for entry in reversed(trace.entries):
        if entry.outcome is Outcome.FAILED and entry.error_class is not None:
            return entry.error_class.value
    return None
