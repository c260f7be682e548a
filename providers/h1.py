"""Patchbay's own HTTP/1.1 client for upstream calls: kept-alive connections on asyncio, parsed
by httptools, TLS from `ssl`.

aiohttp's client cost about 130 µs of CPU per request above a bare write and parse, a third of
the chat path's budget (docs/performance.md, "What the upstream client costs"). Upstream APIs
need a small part of HTTP/1.1: one request at a time per connection, a body already in bytes,
no redirects, cookies, proxies or upgrades. `H1Client` does that part and nothing more;
`providers.http` keeps what every backend shares (deadlines through its watchdog, connection
slots, tails, error mapping). `PATCHBAY_UPSTREAM_CLIENT=aiohttp` puts aiohttp's client back.

An `H1Client` serves one origin. Each new connection resolves its host through `resolve` (the
gateway passes its guard's, which checks every address) and connects to exactly the addresses
returned, an answer serving new connections for `DNS_SECONDS`; TLS verifies the origin's host
name. Idle connections are reused newest first and
dropped once idle for `keepalive` seconds. Requests offer gzip, and replies are decoded from it
(or from zlib's deflate, should a server send that unasked).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import quote

from foundation import metrics
from providers.h1_connection import Connection, H1Error

Resolve = Callable[[str, int], Awaitable[list[str]]]

USER_AGENT = "patchbay/0.1"
"""What every upstream client sends as `user-agent` (`providers.upstream_pool` uses it for all)."""
DNS_SECONDS = 10.0
"""How long a host's checked addresses serve new connections before it is looked up again
(aiohttp's default DNS cache keeps answers as long)."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class H1Client:
    """The connections to one origin (`scheme://host:port`)."""

    def __init__(
        self,
        origin: str,
        *,
        tls: ssl.SSLContext,
        resolve: Resolve | None = None,
        keepalive: float = 30.0,
        max_idle: int = 100,
        user_agent: str = USER_AGENT,
    ) -> None:
        scheme, _, rest = origin.partition("://")
        host, _, port = rest.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._tls = tls if scheme == "https" else None
        default = 443 if scheme == "https" else 80
        shown = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = shown if self._port == default else f"{shown}:{self._port}"
        self._resolve = resolve
        self._keepalive = keepalive
        self._max_idle = max_idle
        self._user_agent = user_agent
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._closed = False
        self._answer: tuple[float, list[str]] | None = None  # (until, addresses)
        self._lookup: asyncio.Future[list[str]] | None = None

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, connect_timeout: float
    ) -> Connection:
        """Send one request on a kept or new connection; returns it once the reply's headers are
        in. The caller reads the body and then calls `Connection.release`."""
        head = self._head(method, url, headers, body)
        connection = self._kept() or await self._connect(connect_timeout)
        try:
            await connection.send(head, body)
        except BaseException:
            connection.close()
            raise
        return connection

    def keep(self, connection: Connection) -> None:
        if self._closed or len(self._idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def forget(self, connection: Connection) -> None:
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        for connection in list(self._open):
            connection.close()

    def _kept(self) -> Connection | None:
        idle = self._idle
        if not idle:
            return None
        expired = time.monotonic() - self._keepalive
        while idle:
            connection = idle.pop()
            if connection.idle_since > expired and not connection.lost:
                return connection
            connection.close()
        return None

    async def _connect(self, timeout: float) -> Connection:  # noqa: ASYNC109 (the connect phase's own limit)
        if self._closed:
            raise RuntimeError("H1Client is closed")
        loop = asyncio.get_running_loop()
        hostname = self._host if self._tls is not None else None
        failure = "no address"
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses()
                for address in addresses:
                    try:
                        _, connection = await loop.create_connection(
                            lambda: Connection(self),
                            address,
                            self._port,
                            ssl=self._tls,
                            server_hostname=hostname,
                        )
                    except (OSError, ssl.SSLError) as exc:
                        failure = type(exc).__name__
                        continue
                    self._open.add(connection)
                    metrics.observe_connection_opened()
                    return connection
        except TimeoutError:
            raise H1Error("connect timed out") from None
        raise H1Error(failure)

    async def _addresses(self) -> list[str]:
        """The host's checked addresses, looked up at most once per `DNS_SECONDS`: a burst of new
        connections shares one lookup (each answer was checked when it came; connecting to it
        later pins it, as the guard requires). A refusal or a failure is not kept."""
        if self._resolve is None:
            return [self._host]
        answer = self._answer
        if answer is not None and answer[0] > time.monotonic():
            return answer[1]
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = asyncio.ensure_future(self._resolve(self._host, self._port))
            lookup.add_done_callback(self._looked_up)
        return list(await asyncio.shield(lookup))  # one caller's deadline does not end the others'

    def _looked_up(self, lookup: asyncio.Future[list[str]]) -> None:
        self._lookup = None
        if not lookup.cancelled() and lookup.exception() is None:
            self._answer = (time.monotonic() + DNS_SECONDS, lookup.result())

    def _head(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        if method == "HEAD":  # its reply's length header describes a body that never comes
            raise ValueError("HEAD requests are not supported upstream")
        target = _target(url)
        lines = [f"{method} {target} HTTP/1.1\r\nhost: {self._authority}\r\n"]
        named: set[str] = set()
        for name, value in headers.items():
            if name not in _CHECKED_NAMES:
                if not _TOKEN.fullmatch(name):
                    raise ValueError(f"invalid header name {name[:40]!r}")
                if len(_CHECKED_NAMES) < 256:
                    _CHECKED_NAMES.add(name)
            lowered = name.lower()
            if _UNSAFE_VALUE.search(value):
                raise ValueError(f"header {name} has a line break or NUL in its value")
            if lowered in _OWN_HEADERS:
                continue
            named.add(lowered)
            lines.append(f"{name}: {value}\r\n")
        if "user-agent" not in named:
            lines.append(f"user-agent: {self._user_agent}\r\n")
        if "accept-encoding" not in named:
            lines.append("accept-encoding: gzip\r\n")
        if body is not None or method in _BODY_METHODS:
            lines.append(f"content-length: {len(body) if body else 0}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode()


_CHECKED_NAMES: set[str] = set()
"""Header names already seen to be valid tokens (a handful in practice; bounded anyway)."""
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Framing this client writes itself; a caller's value for them is dropped."""


def _target(url: str) -> str:
    """The request target (path and query) of an absolute URL; characters a request line may not
    carry are percent-encoded."""
    start = url.find("/", url.find("://") + 3)
    target = url[start:] if start >= 0 else "/"
    target = target.partition("#")[0] or "/"
    if _UNSAFE_TARGET.search(target):
        target = quote(target, safe="/?&=%:@!$'()*+,;~[]-._")
    return target
