"""The request log's writer, and the notes the request path makes on the current request.

`RequestLog` is a `BufferedRowWriter`: `finish(entry)` is synchronous and O(1) (the entry goes
on a deque), and one background task writes the rows in batches, so logging adds no database
round-trip to a request. With `PATCHBAY_REQUEST_LOG_RETENTION_DAYS=0` it is off: `begin`
returns None and nothing is kept.

An HTTP request's entry is the current one (`current()`, a context variable the middleware
sets); the `/v1` code notes on it who called (`note_caller`), what was asked (`note_request`),
the routed call (`note_stream`, `note_result`) and the error the caller got (`note_error`).
Each note is a few attribute writes and does nothing when no entry is open. Realtime sessions
and turns, which are not HTTP requests, hold their own entry (`begin` / `finish`).

Whether an org logs content is read from its routing snapshot in memory (`Registry.cached`),
which the registry reloads when the org's configuration version moves: no database read.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.buffered import BufferedRowWriter
from providers.types import ChatRequest, ChatResponse, StreamEvent
from server.activity.entry import Completion, RequestEntry, Routed
from server.logs import request_id_var

if TYPE_CHECKING:
    from routing.registry import Registry
    from routing.router import RoutedResult
    from routing.trace import AttemptTrace
    from server.accounts import Principal

_current: contextvars.ContextVar[RequestEntry | None] = contextvars.ContextVar(
    "patchbay_request_entry", default=None
)


class RequestLog(BufferedRowWriter[RequestEntry]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        retention_days: int,
        registry: Registry | None = None,
        flush_interval: float = 1.0,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            sessions,
            name="request_log",
            flush_interval=flush_interval,
            max_pending=max_pending,
            on_flush=on_flush,
        )
        self.retention_days = retention_days
        self.enabled = retention_days > 0
        self._registry = registry

    def begin(self, surface: str, *, request_id: str | None = None) -> RequestEntry | None:
        """A new entry, or None when the request log is off."""
        if not self.enabled:
            return None
        return RequestEntry(surface, request_id=request_id, content_logging=self.content_logging)

    def finish(self, entry: RequestEntry) -> None:
        """The request is over: keep its entry if a valid key named the org."""
        if entry.org_id is None:
            return
        entry.finish()
        self.record(entry)

    def content_logging(self, org_id: str) -> bool:
        """The org's content-logging flag, from its routing snapshot in this process's memory."""
        if self._registry is None:
            return False
        cached = self._registry.cached(org_id)
        return cached is not None and cached.content_logging


def open_entry(
    log: RequestLog, surface: str
) -> tuple[RequestEntry, contextvars.Token[RequestEntry | None]] | None:
    """Make a new entry the current one (the middleware closes it with `close_entry`)."""
    entry = log.begin(surface, request_id=request_id_var.get())
    if entry is None:
        return None
    return entry, _current.set(entry)


def close_entry(log: RequestLog, entry: RequestEntry, token: contextvars.Token[RequestEntry | None]) -> None:
    _current.reset(token)
    log.finish(entry)


def current() -> RequestEntry | None:
    return _current.get()


def note_caller(principal: Principal) -> None:
    """A valid key: from here on the request is the org's and is logged, refusals included."""
    entry = _current.get()
    if entry is not None:
        entry.org_id = principal.org_id
        entry.key_id = principal.key_id
        entry.agent_id = principal.agent_id


def note_response(status: int) -> None:
    """The response's status is going out (`http.response.start`): for endpoints that report
    it themselves instead of having their messages watched (`middleware.SELF_REPORTING`)."""
    entry = _current.get()
    if entry is not None:
        entry.status = status


def note_completed() -> None:
    """The response's last body message is going out: the body ran to its end."""
    entry = _current.get()
    if entry is not None:
        entry.completed = True


def note_request(model: str | None, prompt: ChatRequest | str | None = None) -> None:
    """The model asked, and the request's content (kept by reference; stored only with content logging on)."""
    entry = _current.get()
    if entry is not None:
        entry.model = model
        entry.prompt = prompt


def note_error(code: str | None, *, after_output: bool = False, error_class: str | None = None) -> None:
    """The error the caller got (`ApiError.code`); `after_output` for an error event ending a 200 stream."""
    entry = _current.get()
    if entry is not None:
        entry.error_code = code
        entry.failed = entry.failed or after_output
        entry.error_class = error_class or entry.error_class


def note_trace(trace: AttemptTrace | None) -> None:
    """The trace of a routed call that served nothing (`AllAttemptsFailedError.trace`)."""
    entry = _current.get()
    if entry is not None and trace is not None and entry.call is None:
        entry.trace = trace


def note_speech(
    trace: AttemptTrace | None, *, prompt: str | None = None, response: str | None = None
) -> None:
    """An `/v1/audio` segment: its trace (filling in as it runs), and its text with content logging on."""
    entry = _current.get()
    if entry is None:
        return
    entry.trace = trace
    if (prompt is not None or response is not None) and entry.wants_content():
        entry.content = True
        entry.prompt = prompt
        entry.completion = response


def note_result(result: RoutedResult) -> None:
    """A routed non-streaming call that served."""
    entry = _current.get()
    if entry is None:
        return
    entry.trace = result.trace
    entry.usage = result.response.usage
    if entry.wants_content():
        entry.content = True
        entry.completion = response_text(result.response)


def note_stream(call: Routed, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """A routed streaming call; its trace and usage are read when the row is written. Returns
    the events to read on: `events` itself or, with content logging on, events that also
    gather the completion."""
    entry = _current.get()
    return events if entry is None else follow(entry, call, events)


def follow(
    entry: RequestEntry, call: Routed, events: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    """`note_stream` for an entry held directly (a realtime turn)."""
    entry.call = call
    if not entry.wants_content():
        return events
    completion = Completion()
    entry.content = True
    entry.completion = completion
    return Gathered(events, completion)


class Gathered:
    """Events passed through unchanged while their text is added to a `Completion`.

    A plain iterator, not a generator: it holds no suspended frame, so a caller that stops
    early closes the underlying events (`aclose`) exactly as it would without it."""

    __slots__ = ("_completion", "_events")

    def __init__(self, events: AsyncIterator[StreamEvent], completion: Completion) -> None:
        self._events = events
        self._completion = completion

    def __aiter__(self) -> Gathered:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._events.__anext__()
        self._completion.add(event)
        return event

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


def response_text(response: ChatResponse) -> str:
    completion = Completion()
    if response.text:
        completion.add_text(response.text)
    for call in response.tool_calls:
        completion.add_tool_call(call.name, call.arguments)
    return completion.text()
