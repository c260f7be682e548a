"""The pool of upstream clients: one per origin, shared by every org that calls it.

`UpstreamClients` makes a client on an origin's first call: Patchbay's own `providers.h1.H1Client`
(the default backend; with `resolve_checked`, as the gateway passes, every address it connects to
is checked first), an `aiohttp.ClientSession` (`backend="aiohttp"`; the gateway's comes from a
factory whose connector checks every address) or an `httpx.AsyncClient` (`backend="httpx"`, or
any `transport_factory`, which is how tests substitute the network). Every client keeps no
cookies and takes no proxy from the environment, and all share one TLS context (`tls_context`). Each origin has connection slots
(`providers.origin_slots`) bounding the calls open to it, and a client no call has used for
`IDLE_ORIGIN_SECONDS` is closed when a new origin comes. Requests go through `providers.http`.
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp
import httpx

from providers.h1 import USER_AGENT, H1Client
from providers.origin_slots import OriginSlots
from providers.tail import Tails

Backend = Literal["h1", "httpx", "aiohttp"]

DEFAULT_BACKEND: Backend = "h1"
"""Chosen by `bench/adapters.py` and `bench/upstream_client.py`; the figures are in
docs/performance.md. `h1` is `providers.h1`: Patchbay's upstream path on it costs about 90 µs of
CPU a request less than on aiohttp's client ("Patchbay's own upstream client"), which in turn is
below httpx's: httpx's request and response objects were a fifth of the gateway's event-loop
time ("Gateway")."""

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


Client = H1Client | httpx.AsyncClient | aiohttp.ClientSession

CheckedResolve = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the addresses a connection to it may use, every one checked; raises when the
host may not be connected to. For connections aiohttp does not make (speech WebSockets), what
the gateway's guarded connector does for HTTP (`routing.guard.checked_resolver`)."""


class UpstreamClients:
    """The pool of upstream clients, one per origin.

    `transport_factory` replaces the network with an httpx transport (tests pass
    `httpx.MockTransport`); `session_factory` supplies the aiohttp session (the gateway's has
    a connector that guards every address it connects to); otherwise `backend` picks Patchbay's
    own client (`providers.h1`, which checks each new connection's addresses with
    `resolve_checked`), aiohttp's or httpx's own pool. Every client sends `user-agent`;
    redirects are never followed.
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
        self._origins: dict[str, tuple[Client, OriginSlots]] = {}
        self.resolve_checked = resolve_checked
        """How the WebSockets beside this pool find (and check) their addresses; None: unchecked."""
        self._clock = clock
        self._swept = clock()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.tails = Tails()
        """Finished responses whose last bytes are still being read (`providers.tail`)."""

    def client_for(self, url: str) -> Client:
        return self.origin_for(url)[0]

    def origin_for(self, url: str) -> tuple[Client, OriginSlots]:
        """The origin's client and its connection slots, made on first use."""
        if self._closed:
            raise RuntimeError("UpstreamClients is closed")
        origin = origin_of(url)
        found = self._origins.get(origin)
        if found is None:
            self._drop_idle()
            size = self._limits.max_connections or DEFAULT_CONNECTIONS
            found = self._origins[origin] = (self._new_client(origin), OriginSlots(origin, size, self._clock))
        return found

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
            origin
            for origin, (_, slots) in self._origins.items()
            if slots.idle_since(now - IDLE_ORIGIN_SECONDS)
        ]
        for origin in idle:
            client, _ = self._origins.pop(origin)
            task = asyncio.get_running_loop().create_task(_close_client(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _new_client(self, origin: str) -> Client:
        if self.backend == "h1":
            return H1Client(
                origin,
                tls=tls_context(),
                resolve=self.resolve_checked,
                keepalive=self._limits.keepalive_expiry or 30.0,
                max_idle=self._limits.max_keepalive_connections or 100,
                user_agent=USER_AGENT,
            )
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
        return tuple(self._origins)

    async def aclose(self) -> None:
        self._closed = True
        await self.tails.aclose()
        origins, self._origins = list(self._origins.values()), {}
        for client, _ in origins:
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
