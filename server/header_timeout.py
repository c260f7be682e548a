"""uvicorn's httptools protocol with a deadline for each request's headers.

uvicorn arms no timer while a request's headers arrive, and none on a fresh connection that
has sent nothing: a client that opens a socket and trickles a header byte every few seconds
(or sends nothing at all) holds a connection and a file descriptor for as long as it likes,
and a few thousand of them exhaust the process. This protocol gives a new connection, and
every later request from its first byte, `header_timeout` seconds to finish its request line
and headers, then closes the connection (an idle kept-alive connection is closed by
uvicorn's own `timeout_keep_alive`). Bodies and WebSocket traffic after
the headers are not affected (their own limits apply).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(header_timeout: float) -> Any:
    """The protocol factory for uvicorn's `http` option; a partial, so it pickles for workers."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout=header_timeout)
