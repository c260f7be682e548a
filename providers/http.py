"""The upstream HTTP layer every wire adapter shares.

One pooled client per upstream origin, created on first use and closed by
`UpstreamClients.aclose()`: an `aiohttp.ClientSession` used directly (the default backend),
or an `httpx.AsyncClient` (`backend="httpx"`, or any `transport_factory`, which is how tests
substitute the network). Requests go through `request` (body read in full) or
`open_stream` (body consumed chunk by chunk); both enforce `Timeouts` and turn transport
failures into `ProviderError(TIMEOUT | NETWORK)`. Leaving `open_stream` early, by
cancellation, an exception or closing the generator that iterates it, closes the upstream
response at once, so the provider stops generating (and billing) for a caller who left. A
stream the adapter saw end by its protocol (`UpstreamStream.finish`) keeps its connection:
the body's last bytes are read behind the caller (`providers.tail`).

Protocol-specific error mapping lives with each adapter; what every protocol shares lives
here: `retry-after` parsing and scrubbing secrets out of provider error text.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import http.cookiejar
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson

from foundation import tracing
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.origin_slots import OriginSlots
from providers.tail import Tails
from providers.watchdog import Watchdog

Backend = Literal["httpx", "aiohttp"]

DEFAULT_BACKEND: Backend = "aiohttp"
"""Chosen by `bench/adapters.py`; the figures are in docs/performance.md. `aiohttp` is aiohttp's
own client, without an httpx layer on top: httpx's request and response objects were a fifth
of the gateway's event-loop time (docs/performance.md, "Gateway")."""

DEFAULT_CONNECTIONS = 1000
"""Calls a worker has open to one upstream origin at once (`providers.origin_slots`); the
server's is `PATCHBAY_UPSTREAM_CONNECTIONS`."""


def upstream_limits(connections: int = DEFAULT_CONNECTIONS) -> httpx.Limits:
    """The pool limits for `connections` calls open to one origin; idle connections are kept 30 s."""
    return httpx.Limits(
        max_connections=connections, max_keepalive_connections=min(connections, 100), keepalive_expiry=30.0
    )


DEFAULT_LIMITS = upstream_limits()

IDLE_ORIGIN_SECONDS = 120.0
"""An origin no call has used for this long has its client closed (four times the 30 s its
connections are kept, so none is still open)."""
SWEEP_SECONDS = 30.0
"""How often, at most, idle origins are looked for (only when a new origin is first called)."""

_MAX_ERROR_BODY = 64 * 1024

MAX_REPLY_BYTES = 64 * 1024 * 1024
"""The most `request` reads of one reply: far above any completion or synthesised sentence, and
what keeps an endpoint that never ends its body from growing the worker's memory without bound."""

USER_AGENT = "patchbay/0.1"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits for one upstream call, in seconds.

    `connect` bounds TCP/TLS setup. `first_byte` counts from the moment the request is
    issued (connection setup included) to the response headers and, for a stream, to the
    first body chunk: the caller's time to first byte. `between_chunks` bounds each later
    gap in the body; a provider that stalls mid-stream trips it. `write` bounds sending the
    request body (large images) on the httpx backend; aiohttp has no such setting, and there
    the `first_byte` deadline, which spans the send, bounds it instead.
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


def origin_of(url: str) -> str:
    """`scheme://host:port` with the default port made explicit, the pool key."""
    # Cached by URL without its query, so no query string (which might carry a credential) is kept.
    return _origin(url.partition("?")[0].partition("#")[0])


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("upstream URL must be absolute http(s)")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"


def _make_session(limits: httpx.Limits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,  # calls are bounded per origin by `providers.origin_slots`
        keepalive_timeout=limits.keepalive_expiry or 30.0,
        ssl=tls_context(),
    )
    return upstream_session(connector)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one TLS client context of every upstream connection (certificates verified against
    certifi's bundle). Loading that bundle takes about 27 ms of CPU and 0.8 MiB, so it is done
    once per process and shared, not once per origin: made per origin, it blocked the event
    loop on each new private endpoint's first call and was never freed."""
    return httpx.create_ssl_context()


def upstream_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    """aiohttp's client as every upstream call uses it: no proxy from the environment, no cookies.

    One client serves every org that calls an origin, so a cookie kept from one org's reply would
    ride on the next org's request there (an auth proxy's session cookie would let it in as the
    first org). Upstream APIs authenticate by header, and no cookie is kept or sent.
    """
    return aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())


def _no_cookies() -> http.cookiejar.CookieJar:
    """httpx's jar for an upstream client: its policy allows no domain, so no cookie is kept."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


Client = httpx.AsyncClient | aiohttp.ClientSession

CheckedResolve = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the addresses a connection to it may use, every one checked; raises when the
host may not be connected to. For connections aiohttp does not make (speech WebSockets), what
the gateway's guarded connector does for HTTP (`routing.guard.checked_resolver`)."""


class UpstreamClients:
    """The pool of upstream clients, one per origin.

    `transport_factory` replaces the network with an httpx transport (tests pass
    `httpx.MockTransport`); `session_factory` supplies the aiohttp session (the gateway's has
    a connector that guards every address it connects to); otherwise `backend` picks aiohttp's
    client or httpx's own pool. aiohttp sessions get `user-agent`; redirects are never followed.
    """

    def __init__(
        self,
        *,
        backend: Backend = DEFAULT_BACKEND,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        clock: Callable[[], float] = time.monotonic,
        resolve_checked: CheckedResolve | None = None,
    ) -> None:
        if transport_factory is not None and session_factory is not None:
            raise ValueError("pass transport_factory or session_factory, not both")
        self.backend: Backend = "httpx" if transport_factory is not None else backend
        if session_factory is not None:
            self.backend = "aiohttp"
        self._limits = limits
        self._factory = transport_factory
        self._session_factory = session_factory
        self._clients: dict[str, Client] = {}
        self._slots: dict[str, OriginSlots] = {}
        self.resolve_checked = resolve_checked
        """How the WebSockets beside this pool find (and check) their addresses; None: unchecked."""
        self._clock = clock
        self._swept = clock()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.tails = Tails()
        """Finished responses whose last bytes are still being read (`providers.tail`)."""

    def client_for(self, url: str) -> Client:
        return self._open(url)[0]

    def _open(self, url: str) -> tuple[Client, OriginSlots]:
        """The origin's client and its connection slots, made on first use."""
        if self._closed:
            raise RuntimeError("UpstreamClients is closed")
        origin = origin_of(url)
        client = self._clients.get(origin)
        if client is None:
            self._drop_idle()
            client = self._clients[origin] = self._new_client()
            size = self._limits.max_connections or DEFAULT_CONNECTIONS
            self._slots[origin] = OriginSlots(origin, size, self._clock)
        return client, self._slots[origin]

    def _drop_idle(self) -> None:
        """Close the clients of origins no call has used for `IDLE_ORIGIN_SECONDS` (at most every
        `SWEEP_SECONDS`, when a new origin comes): their kept connections have expired by then, so
        nothing is lost, and a worker holds only the origins in use, however many orgs' private
        endpoints it has called."""
        now = self._clock()
        if now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        idle = [
            origin for origin, slots in self._slots.items() if slots.idle_since(now - IDLE_ORIGIN_SECONDS)
        ]
        for origin in idle:
            del self._slots[origin]
            task = asyncio.get_running_loop().create_task(_close_client(self._clients.pop(origin)))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _new_client(self) -> Client:
        if self.backend == "aiohttp":
            session = self._session_factory() if self._session_factory else _make_session(self._limits)
            session.headers["user-agent"] = USER_AGENT
            return session
        if self._factory is not None:
            transport = self._factory()
        else:
            transport = httpx.AsyncHTTPTransport(limits=self._limits, trust_env=False, verify=tls_context())
        # Timeouts are enforced per phase by `request`/`open_stream`; httpx's own are off
        # except connect and write, which it measures precisely at the socket.
        return httpx.AsyncClient(
            transport=transport,
            timeout=None,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": USER_AGENT},
            cookies=_no_cookies(),  # see `upstream_session`
        )

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(self._clients)

    async def aclose(self) -> None:
        self._closed = True
        await self.tails.aclose()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await _close_client(client)
        if self._closing:
            await asyncio.gather(*self._closing)

    async def __aenter__(self) -> UpstreamClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _close_client(client: Client) -> None:
    if isinstance(client, aiohttp.ClientSession):
        await client.close()
    else:
        await client.aclose()


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


def parse_json(body: bytes) -> Any:
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


class _AiohttpBody:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._content = response.content

    async def read(self) -> bytes | None:
        return (await self._content.readany()) or None

    async def aclose(self) -> None:
        return None


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
        Only the default (aiohttp) backend keeps it; with httpx the response closes as before."""
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
                    raise _timeout_error(self._provider, phase, budget) from None
                except _TRANSPORT_ERRORS as exc:
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


def _timeout_error(provider: str, phase: str, budget: float) -> ProviderError:
    return ProviderError(
        ErrorClass.TIMEOUT, f"upstream timed out ({phase}, {budget:.3g}s)", provider=provider
    )


# aiohttp's own errors (the default backend), and those httpx-aiohttp leaves unmapped when a
# caller's transport_factory uses it.
_TRANSPORT_ERRORS = (httpx.RequestError, aiohttp.ClientError)


# Failures of a connection that was open when the request went out (not of making one): the
# server closed it, or reset it, before replying.
_CLOSED_BEFORE_REPLY = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientOSError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
_NOT_OPEN = (aiohttp.ClientConnectorError,)


def transport_error(exc: Exception, provider: str, *, before_reply: bool = False) -> ProviderError:
    """Map a transport failure; the message names the failure kind, never headers.
    `before_reply`: it happened before the response's headers arrived."""
    if isinstance(exc, httpx.TimeoutException) and _really_timed_out(exc):
        return ProviderError(
            ErrorClass.TIMEOUT, f"upstream timed out ({type(exc).__name__})", provider=provider
        )
    return ProviderError(
        ErrorClass.NETWORK,
        f"upstream connection failed ({type(exc).__name__})",
        provider=provider,
        closed_before_reply=before_reply and _closed(exc),
    )


def _closed(exc: Exception) -> bool:
    """The connection was open and the server closed or reset it. httpx-aiohttp maps aiohttp's
    errors to httpx's (a closed connection to `ConnectTimeout`); its cause says which it was."""
    cause = exc.__cause__
    failure = cause if isinstance(cause, aiohttp.ClientError) else exc
    return isinstance(failure, _CLOSED_BEFORE_REPLY) and not isinstance(failure, _NOT_OPEN)


def _really_timed_out(exc: httpx.TimeoutException) -> bool:
    # httpx-aiohttp maps every aiohttp connection error (refused, reset) to ConnectTimeout;
    # its cause says what actually happened.
    cause = exc.__cause__
    if cause is None or isinstance(cause, TimeoutError):
        return True
    return not type(cause).__module__.startswith("aiohttp")


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
    span = _upstream_span(method, url, provider) if tracing.on() else None
    error: str | None = None
    watchdog = Watchdog()  # bounds the wait for headers and for each chunk
    slots: OriginSlots | None = None
    try:
        client, origin_slots = clients._open(url)
        await origin_slots.take(timeouts.connect, provider)
        slots = origin_slots
        if isinstance(client, aiohttp.ClientSession):
            opened = _open_aiohttp(
                client, method, url, headers, body, timeouts, provider, watchdog, clients.tails
            )
            async with opened as stream:
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
            raise _timeout_error(provider, "first byte", timeouts.first_byte) from None
        except _TRANSPORT_ERRORS as exc:
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
async def _open_aiohttp(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeouts: Timeouts,
    provider: str,
    watchdog: Watchdog,
    tails: Tails,
) -> AsyncIterator[UpstreamStream]:
    deadline = time.monotonic() + timeouts.first_byte
    sent = session.request(
        method, url, headers=headers, data=body, allow_redirects=False, timeout=_aiohttp_timeout(timeouts)
    )
    try:
        response = await watchdog.wait(sent, timeouts.first_byte)
    except TimeoutError:
        raise _timeout_error(provider, "first byte", timeouts.first_byte) from None
    except _TRANSPORT_ERRORS as exc:
        raise transport_error(exc, provider, before_reply=True) from None
    reply = _AiohttpBody(response)
    stream = UpstreamStream(response.status, response.headers, reply, timeouts, provider, deadline, watchdog)
    try:
        yield stream
    finally:
        if stream.finished and not response.content.at_eof():
            # The reply is complete; only the body's framing is still to come.
            tails.read_out(reply.read, response.close, timeouts.between_chunks)
        else:
            # A fully read response has already gone back to the pool; `close` on an unfinished
            # one drops its connection, which is what tells the provider to stop generating.
            response.close()


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` seconds or `retry-after` HTTP-date.

    Returns None when absent or unparseable; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(value, 0.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)


def first_header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names:
        value = lowered.get(name)
        if value:
            return value
    return None


SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "xi-api-key", "api-key"})

# Key-shaped tokens some providers echo back (whole or partly masked) in 401 bodies.
_KEY_LIKE = re.compile(r"\b(?:sk|xai|pk|rk)-[A-Za-z0-9_\-*.]{6,}|\bAIza[A-Za-z0-9_\-]{20,}")


def secrets_in(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values carried by auth headers, for `redact`."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    return tuple(s for s in found if len(s) >= 4)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every occurrence of `secrets` and anything key-shaped from provider text."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)
