"""The upstream HTTP layer every wire adapter shares.

Requests go through `request` (body read in full, at most `MAX_REPLY_BYTES`) or `open_stream`
(body consumed chunk by chunk), on the origin's client from `providers.upstream_pool`; both
enforce `Timeouts` and turn transport failures into `ProviderError(TIMEOUT | NETWORK)`.
Leaving `open_stream` early, by cancellation, an exception or closing the generator that
iterates it, closes the upstream response at once, so the provider stops generating (and
billing) for a caller who left. A stream the adapter saw end by its protocol
(`UpstreamStream.finish`) keeps its connection: the body's last bytes are read behind the
caller (`providers.tail`).

Protocol-specific error mapping lives with each adapter; what every protocol shares about
failures lives beside this module: `providers.transport_errors` (a failed connection or a
passed deadline), `providers.reply_headers` (`retry-after`) and `providers.redaction` (secrets
out of provider text).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson

from foundation import tracing
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.h1 import H1Client
from providers.origin_slots import OriginSlots
from providers.tail import Tails
from providers.transport_errors import TRANSPORT_ERRORS, timeout_error, transport_error
from providers.upstream_pool import UpstreamClients
from providers.watchdog import Watchdog

_MAX_ERROR_BODY = 64 * 1024

MAX_REPLY_BYTES = 64 * 1024 * 1024
"""The most `request` reads of one reply: far above any completion or synthesised sentence, and
what keeps an endpoint that never ends its body from growing the worker's memory without bound."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits for one upstream call, in seconds.

    `connect` bounds TCP/TLS setup. `first_byte` counts from the moment the request is
    issued (connection setup included) to the response headers and, for a stream, to the
    first body chunk: the caller's time to first byte. `between_chunks` bounds each later
    gap in the body; a provider that stalls mid-stream trips it. `write` bounds sending the
    request body (large images) on the httpx backend; on the h1 and aiohttp backends the
    `first_byte` deadline, which spans the send, bounds it instead.
    """

    connect: float = 10.0
    first_byte: float = 60.0
    between_chunks: float = 30.0
    write: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "first_byte", "between_chunks", "write"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Timeouts.{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A fully read upstream response."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive."""
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON (a proxy's HTML error page)."""
        return parse_json(self.body)


def parse_json(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class _Body(Protocol):
    async def read(self) -> bytes | None:
        """The next chunk as it arrives (possibly empty), None at the end."""
        ...

    async def aclose(self) -> None: ...


class _HttpxBody:
    def __init__(self, response: httpx.Response) -> None:
        self._iterator = response.aiter_bytes()

    async def read(self) -> bytes | None:
        try:
            return await anext(self._iterator)
        except StopAsyncIteration:
            return None

    async def aclose(self) -> None:
        await self._iterator.aclose()  # type: ignore[attr-defined]


class _PooledReply(_Body, Protocol):
    """A reply on a connection its client pools (`providers.h1`'s or aiohttp's)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive."""
        ...

    @property
    def done(self) -> bool:
        """The body has been received to its end."""
        ...

    def release(self) -> None:
        """Back to the pool if the body ended; otherwise the connection is dropped."""
        ...


class _AiohttpReply:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._content = response.content
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes | None:
        return (await self._content.readany()) or None

    async def aclose(self) -> None:
        return None

    @property
    def done(self) -> bool:
        return self._content.at_eof()

    def release(self) -> None:
        # A fully read response has already gone back to the pool; `close` on an unfinished one
        # drops its connection.
        self._response.close()


async def _aiohttp_reply(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeouts: Timeouts,
) -> _AiohttpReply:
    response = await session.request(
        method, url, headers=headers, data=body, allow_redirects=False, timeout=_aiohttp_timeout(timeouts)
    )
    return _AiohttpReply(response)


class UpstreamStream:
    """An open streaming response; iterate `chunks()` once."""

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: _Body,
        timeouts: Timeouts,
        provider: str,
        deadline: float,
        watchdog: Watchdog,
    ) -> None:
        self._body = body
        self._timeouts = timeouts
        self._provider = provider
        self._first_deadline = deadline
        self._watchdog = watchdog
        self.status = status
        self.headers = headers
        """Case-insensitive."""
        self.finished = False
        """Set by `finish`."""

    def finish(self) -> None:
        """The protocol's own end was read (OpenAI's `[DONE]`, Anthropic's `message_stop`): what
        follows is only the body's framing, so on leaving `open_stream` the connection is kept
        for the next request once that arrives (`providers.tail`), instead of being dropped.
        The h1 and aiohttp backends keep it; with httpx the response closes as before."""
        self.finished = True

    async def read(self) -> bytes:
        """The whole body; one longer than `MAX_REPLY_BYTES` is `ProviderError(SERVER_ERROR)`."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    f"upstream reply larger than {MAX_REPLY_BYTES:,} bytes; not read further",
                    provider=self._provider,
                )
        return bytes(body)

    async def read_error_body(self) -> bytes:
        """Read a (bounded) error body; used when `status` is not 2xx."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if len(body) >= _MAX_ERROR_BODY:
                break
        return bytes(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; a stall raises `ProviderError(TIMEOUT)`."""
        body = self._body
        watchdog = self._watchdog
        first = True
        try:
            while True:
                if first:
                    budget = max(self._first_deadline - time.monotonic(), 0.0)
                    phase = "first byte"
                else:
                    budget = self._timeouts.between_chunks
                    phase = "between chunks"
                try:
                    chunk = await watchdog.wait(body.read(), budget)
                except TimeoutError:
                    raise timeout_error(self._provider, phase, budget) from None
                except TRANSPORT_ERRORS as exc:
                    raise transport_error(exc, self._provider) from None
                if chunk is None:
                    return
                if chunk:
                    first = False
                    yield chunk
        finally:
            await body.aclose()


def _httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(connect=timeouts.connect, read=None, write=timeouts.write, pool=timeouts.connect)


def _aiohttp_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # `connect` also bounds the wait for a pooled connection, like httpx's pool timeout.
    return aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_connect=timeouts.connect)


async def request(
    clients: UpstreamClients,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeouts: Timeouts,
    provider: str,
) -> UpstreamResponse:
    """Send one request and read the whole body under `timeouts`, at most `MAX_REPLY_BYTES`."""
    async with open_stream(
        clients, method, url, headers=headers, body=body, timeouts=timeouts, provider=provider
    ) as stream:
        return UpstreamResponse(status=stream.status, headers=stream.headers, body=await stream.read())


@asynccontextmanager
async def open_stream(
    clients: UpstreamClients,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeouts: Timeouts,
    provider: str,
) -> AsyncIterator[UpstreamStream]:
    """Open a response whose body is read incrementally; the response closes on exit.

    Raises `ProviderError(TIMEOUT)` if headers do not arrive within `first_byte`, and
    `ProviderError(NETWORK)` on connection failures. HTTP error statuses are returned, not
    raised: the adapter classifies them with its protocol's error shapes.
    """
    span = _upstream_span(method, url, provider) if tracing.recording() else None
    error: str | None = None
    watchdog = Watchdog()  # bounds the wait for headers and for each chunk
    slots: OriginSlots | None = None
    try:
        client, origin_slots = clients.origin_for(url)
        await origin_slots.take(timeouts.connect, provider)
        slots = origin_slots
        if isinstance(client, H1Client | aiohttp.ClientSession):
            if isinstance(client, H1Client):
                sent: Awaitable[_PooledReply] = client.send(method, url, headers, body, timeouts.connect)
            else:
                sent = _aiohttp_reply(client, method, url, headers, body, timeouts)
            async with _open_pooled(sent, timeouts, provider, watchdog, clients.tails) as stream:
                error = _status_error(span, stream.status)
                yield stream
            return
        req = client.build_request(
            method, url, headers=dict(headers), content=body, timeout=_httpx_timeout(timeouts)
        )
        deadline = time.monotonic() + timeouts.first_byte
        try:
            response = await watchdog.wait(client.send(req, stream=True), timeouts.first_byte)
        except TimeoutError:
            raise timeout_error(provider, "first byte", timeouts.first_byte) from None
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, provider, before_reply=True) from None
        error = _status_error(span, response.status_code)
        try:
            yield UpstreamStream(
                response.status_code,
                response.headers,
                _HttpxBody(response),
                timeouts,
                provider,
                deadline,
                watchdog,
            )
        finally:
            # Closing an unfinished response drops its connection instead of pooling it, which
            # is what tells the provider to stop generating.
            await response.aclose()
    except ProviderError as exc:
        error = exc.error_class.value
        raise
    finally:
        if slots is not None:
            slots.release()
        watchdog.close()
        if span is not None:  # tracing off: no call at all
            tracing.end(span, error=error)


def _status_error(span: tracing.Span | None, status: int) -> str | None:
    if span is not None:
        tracing.set_attributes(span, {"http.response.status_code": status})
    return f"http_{status}" if status >= 400 else None


def _upstream_span(method: str, url: str, provider: str) -> tracing.Span | None:
    """The provider call, from sending the request to closing its response. The host only: a
    URL's path and query can carry a key (Gemini's `?key=`)."""
    parts = urlsplit(url)
    attributes = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "patchbay.provider": provider,
    }
    return tracing.start(f"upstream {provider}", kind="client", attributes=attributes)


@asynccontextmanager
async def _open_pooled(
    sent: Awaitable[_PooledReply], timeouts: Timeouts, provider: str, watchdog: Watchdog, tails: Tails
) -> AsyncIterator[UpstreamStream]:
    """The reply `sent` brings, as a stream; on leaving, its connection goes back to the pool if
    the body ended, or once its last bytes arrive (`providers.tail`) if the protocol's end was
    read, and is dropped otherwise, which is what tells the provider to stop generating."""
    deadline = time.monotonic() + timeouts.first_byte
    try:
        reply = await watchdog.wait(sent, timeouts.first_byte)
    except TimeoutError:
        raise timeout_error(provider, "first byte", timeouts.first_byte) from None
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, provider, before_reply=True) from None
    stream = UpstreamStream(reply.status, reply.headers, reply, timeouts, provider, deadline, watchdog)
    try:
        yield stream
    finally:
        if stream.finished and not reply.done:
            tails.read_out(reply.read, reply.release, timeouts.between_chunks)
        else:
            reply.release()
