"""One kept-alive HTTP/1.1 connection of `providers.h1`: writes a request, parses its reply with
httptools, and hands the body to the caller chunk by chunk.

The reply's status and headers end `Connection.send`; `Connection.read` returns what has arrived
(decoded from gzip or deflate), waiting when nothing has. Past `READ_PAUSE_BYTES` unread, the
socket is not read until the caller catches up. `Connection.release` gives a cleanly ended reply's
connection back to its pool (`Pool.keep`) and closes any other, which tells the server to stop.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Protocol, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

READ_PAUSE_BYTES = 256 * 1024
"""Unread body bytes past which the socket stops being read until the caller catches up."""
MAX_HEAD_BYTES = 64 * 1024
"""The most a reply may send before its headers end: an endpoint sending endless headers is cut
off there instead of growing the worker's memory until the first-byte deadline."""


class Pool(Protocol):
    """Where a connection goes back when its reply ended cleanly, and what it tells when lost."""

    def keep(self, connection: Connection) -> None: ...

    def forget(self, connection: Connection) -> None: ...


class H1Error(Exception):
    """A transport failure; `kind` names it (never a header or a body)."""

    def __init__(self, kind: str, *, before_reply: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind
        self.closed_before_reply = before_reply
        """The connection was open and the server closed it before any reply arrived."""


class Connection(asyncio.Protocol):
    """One kept-alive connection: a request goes out with `send`, its body comes in with `read`."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self.idle_since = 0.0
        self.lost = False
        self._busy = False
        self._reset()

    def _reset(self) -> None:
        self._header_list: list[tuple[str, str]] = []
        self.status = 0
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self._head: asyncio.Future[None] | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.done = False
        self._keep = False
        self._error: H1Error | None = None
        self._decoder: zlib._Decompress | None = None
        self._informational = False
        self._head_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.done:  # nothing was asked: a server talking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own error (an encoding this client cannot read) comes back as context.
            cause = exc.__context__
            self._fail(cause if isinstance(cause, H1Error) else H1Error("malformed reply"))
            self.close()
            return
        if not self.status:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(H1Error(f"reply headers longer than {MAX_HEAD_BYTES // 1024} KiB"))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._pool.forget(self)
        if not self._busy or self.done:
            return
        if self.status and self._until_close() and exc is None:
            self._complete(keep=False)  # a body delimited by the end of the connection
            return
        self._fail(H1Error("server closed the connection", before_reply=not self.status))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational (103 Early Hints): the reply proper follows
            self._header_list = []
            self._informational = True
            return
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(self._header_list))
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            raise H1Error(f"unsupported content-encoding {encoding[:32]!r}")
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error:
                raise H1Error("undecodable compressed reply") from None
        if body:
            self._chunks.append(body)
            self._buffered += len(body)
            if self._buffered > READ_PAUSE_BYTES and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
        self._complete(keep=self._parser.should_keep_alive())

    # the caller's side

    async def send(self, head: bytes, body: bytes | None) -> None:
        """Write the request and wait for the reply's status and headers."""
        assert self._transport is not None
        self._busy = True
        self._head = self._loop.create_future()
        if self.lost:
            raise H1Error("server closed the connection", before_reply=True)
        if body:
            self._transport.writelines((head, body))
        else:
            self._transport.write(head)
        await self._head
        if self._error is not None:
            raise self._error

    async def read(self) -> bytes | None:
        """The body received so far (waiting for some if none), None at its end."""
        while True:
            if self._chunks:
                chunks, self._chunks, self._buffered = self._chunks, [], 0
                if self._paused and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._error is not None:
                raise self._error
            if self.done:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Nothing to do here: `release` decides the connection's fate when the call ends."""
        return None

    def release(self) -> None:
        """The caller is done with the reply: keep the connection if the reply ended cleanly,
        otherwise close it (which tells the server to stop sending)."""
        if self.done and self._keep and self._error is None and not self.lost:
            if self._paused and self._transport is not None:  # the reply ended with a backlog unread
                self._transport.resume_reading()
            self._busy = False
            self._reset()
            self._pool.keep(self)
        else:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # internals

    def _until_close(self) -> bool:
        headers = self.headers
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")

    def _complete(self, *, keep: bool) -> None:
        self.done = True
        self._keep = keep
        self._wake()

    def _fail(self, error: H1Error) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: the caller may have gone
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
