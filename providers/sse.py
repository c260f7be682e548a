"""An incremental Server-Sent Events decoder: bytes in, events out.

Follows the WHATWG event-stream rules that matter for provider streams: `data:` lines
(several per event are joined with `\\n`), `event:` names, `id:` and `retry:` fields, `:`
comment lines (OpenRouter's `: OPENROUTER PROCESSING` keep-alives) which are skipped, and
`\\r\\n`, `\\n` or `\\r` line ends. Network chunks may split an event, a line, a `\\r\\n`
pair or a multi-byte UTF-8 character anywhere: only complete lines are decoded.

The decoder is pure (no I/O); `aiter_sse` adapts it to an async byte iterator. It holds at most
`MAX_EVENT_BYTES` of one event (an unfinished line, or `data:` lines not yet dispatched): an
upstream that never ends a line or an event fails with `ProviderError(SERVER_ERROR)` instead of
growing the worker's memory without bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from providers.contract import ErrorClass
from providers.errors import ProviderError

_BOM = "\ufeff"

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The most one event may hold. A model's stream event is a few hundred bytes; an image in one
is a few megabytes."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    """The `event:` name; `message` when the server sent none (the spec's default)."""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes with `feed`; call `end` once at end of stream.

    An event is dispatched on a blank line. Per the spec an event with no `data:` line is
    not dispatched. `end` is lenient where the spec is strict: a final event that lacks its
    terminating blank line is still dispatched, because some servers close the connection
    right after the last `data:` line and the caller decides whether the stream was complete.
    """

    __slots__ = ("_buf", "_data", "_event", "_held", "_id", "_limit", "_provider", "_retry", "_started")

    def __init__(self, *, provider: str = "", limit: int = MAX_EVENT_BYTES) -> None:
        self._provider = provider
        self._limit = limit
        self._buf = b""
        self._data: list[str] = []
        self._held = 0
        """Characters in `_data`, against `_limit`."""
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if (
            chunk.endswith(b"\n\n")
            and chunk.startswith(b"data: ")
            and not (self._buf or self._data or self._event)
            and b"\r" not in chunk
        ):
            # Whole one-line events, as a model's stream mostly arrives: the events the lines below
            # would dispatch, without a call per line. Mostly one a read; several when reads fall
            # behind the stream.
            if chunk.count(b"\n") == 2:
                self._started = True
                event = SSEEvent(
                    chunk[6:-2].decode("utf-8", errors="replace"), "message", self._id, self._retry
                )
                self._retry = None
                return [event]
            parts = chunk[:-2].split(b"\n\n")
            if all(part.startswith(b"data: ") and b"\n" not in part for part in parts):
                self._started = True
                first = SSEEvent(
                    parts[0][6:].decode("utf-8", errors="replace"), "message", self._id, self._retry
                )
                self._retry = None
                return [
                    first,
                    *(
                        SSEEvent(p[6:].decode("utf-8", errors="replace"), "message", self._id)
                        for p in parts[1:]
                    ),
                ]
        buf = self._buf + chunk if self._buf else chunk
        # A trailing `\r` may be the first half of `\r\n`: keep it until the next chunk decides.
        cut = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
        complete = buf[:cut]
        if b"\r" in complete:
            complete = complete.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = complete.rfind(b"\n")
        if end < 0:
            self._buf = buf
            if len(buf) > self._limit:
                raise self._too_large()
            return []
        self._buf = complete[end + 1 :] + buf[cut:]
        if len(self._buf) > self._limit:
            raise self._too_large()
        events: list[SSEEvent] = []
        # Complete lines end on a line break, so no UTF-8 sequence is cut: decode them at once.
        for line in complete[:end].decode("utf-8", errors="replace").split("\n"):
            self._line(line, events)
        return events

    def end(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._buf:
            rest = self._buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self._buf = b""
            for raw in rest.split(b"\n"):
                self._line(raw.decode("utf-8", errors="replace"), events)
        self._line("", events)
        return events

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            self._dispatch(out)
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._held += len(value)
            if self._held > self._limit:
                raise self._too_large()
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(
                SSEEvent(
                    data="\n".join(self._data), event=self._event or "message", id=self._id, retry=self._retry
                )
            )
        self._data = []
        self._held = 0
        self._event = ""
        self._retry = None

    def _too_large(self) -> ProviderError:
        self._buf, self._data, self._held = b"", [], 0
        return ProviderError(
            ErrorClass.SERVER_ERROR,
            f"malformed upstream stream: one event held more than {self._limit:,} bytes without ending",
            provider=self._provider,
        )


async def aiter_sse(chunks: AsyncIterable[bytes], *, provider: str = "") -> AsyncIterator[SSEEvent]:
    """Decode an async byte stream into events, flushing a final unterminated event."""
    decoder = SSEDecoder(provider=provider)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end():
        yield event
