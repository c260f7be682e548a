"""The base URL guard: keep org-supplied endpoints off loopback, link-local and private networks.

A custom base URL that resolves to loopback, link-local (169.254.0.0/16, where cloud metadata
lives), private, shared or otherwise non-global addresses, or an IPv6 address embedding one
(IPv4-mapped, NAT64, 6to4, IPv4-compatible), is refused unless the operator sets
PATCHBAY_ALLOW_PRIVATE_BASE_URLS=true (self-hosted models on a private network are a real
use). Plain http to a public host is refused unless `allow_plain_http`. Multicast is always
refused.

Checks run at save time (`validate_base_url`, syntax and literal addresses) and on every
connect (`check_base_url` before each attempt, and inside the HTTP client: the
`GuardedTCPConnector` for the default aiohttp backend or the `GuardedNetworkBackend` for
httpx's own pool, both of which connect to exactly the addresses they checked, so a DNS
answer cannot change between check and connect). Messages name the host and address, never the whole URL, which may carry secrets.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import httpcore
import httpx
from aiohttp.abc import ResolveResult
from aiohttp.tracing import Trace

from providers.upstream_pool import CheckedResolve, tls_context, upstream_limits, upstream_session
from routing.errors import BaseUrlRefusedError
from routing.model import ConnectionView

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]

_SWITCH = "PATCHBAY_ALLOW_PRIVATE_BASE_URLS=true"


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    allow_private: bool = False
    allow_plain_http: bool = False


@dataclass(frozen=True, slots=True)
class BaseUrl:
    scheme: str
    host: str
    port: int


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to: mapped, NAT64, 6to4 or IPv4-compatible.

    A NAT64 or 6to4 gateway forwards to the embedded address, so `64:ff9b::7f00:1` reaches
    127.0.0.1 (from the gateway's network) as surely as the literal does.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """`None` for a public unicast address, else what makes it private (`loopback`, `link_local`, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            # Local-use NAT64 (RFC 8215) translates into the operator's own network.
            return "private"
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            kind = address_kind(embedded)
            if kind is not None or ip.ipv4_mapped is not None:
                return kind
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def check_address(host: str, address: str, policy: GuardPolicy) -> IPAddress:
    """Raise `BaseUrlRefusedError` unless `policy` permits connecting to `address`."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    kind = address_kind(ip)
    if kind == "multicast":
        raise BaseUrlRefusedError(
            "private_address", f"base URL host {host} resolves to multicast address {ip}"
        )
    if kind is not None and not policy.allow_private:
        raise BaseUrlRefusedError(
            "private_address",
            f"base URL host {host} resolves to {kind} address {ip}; set {_SWITCH} to allow private endpoints",
        )
    return ip


def validate_base_url(url: str, policy: GuardPolicy) -> BaseUrl:
    """Save-time check: syntax, scheme, no credentials in the URL, literal addresses, and no
    numeric IPv4 forms other than the dotted quad."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise BaseUrlRefusedError("invalid_url", "base URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BaseUrlRefusedError("invalid_url", "base URL must start with https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise BaseUrlRefusedError(
            "invalid_url", "base URL must not carry credentials; store the key on the connection"
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BaseUrlRefusedError("invalid_url", "base URL has no host")
    if parts.query or parts.fragment:
        raise BaseUrlRefusedError("invalid_url", "base URL must not have a query or fragment")
    base = BaseUrl(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))
    if host == "localhost" or host.endswith(".localhost"):
        check_address(host, "127.0.0.1", policy)
        return base
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            # `2130706433`, `0177.0.0.1`, `127.1`, `0x7f.1`: resolvers read these as IPv4
            # addresses (127.0.0.1 each), which a check of the text as a name would miss.
            raise BaseUrlRefusedError(
                "invalid_url",
                f"base URL host {host} is a numeric IPv4 form{_read_as(host)}; "
                "write the address as four decimal numbers (a.b.c.d)",
            ) from None
        return base
    ip = check_address(host, host, policy)
    _check_scheme(base, [ip], policy)
    return base


def _read_as(host: str) -> str:
    """What the C resolver makes of a numeric form, for the message (no DNS involved)."""
    try:
        return f" (read as {socket.inet_ntoa(socket.inet_aton(host))})"
    except OSError:
        return ""


def _check_scheme(base: BaseUrl, addresses: Iterable[IPAddress], policy: GuardPolicy) -> None:
    if base.scheme != "http" or policy.allow_plain_http:
        return
    if any(address_kind(ip) is None for ip in addresses):
        raise BaseUrlRefusedError(
            "plain_http", f"plain http to public host {base.host} is refused; use https"
        )


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver returns for `host`, without blocking the loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_host(
    host: str, port: int, policy: GuardPolicy, resolve: Resolve = resolve_host
) -> list[IPAddress]:
    """Resolve `host` and check every address; any refused address refuses the host."""
    try:
        addresses = await resolve(host, port)
    except OSError:
        raise BaseUrlRefusedError("unresolvable", f"base URL host {host} does not resolve") from None
    if not addresses:
        raise BaseUrlRefusedError("unresolvable", f"base URL host {host} does not resolve")
    return [check_address(host, a, policy) for a in addresses]


def checked_resolver(policy: GuardPolicy, resolve: Resolve | None = None) -> CheckedResolve:
    """For connections aiohttp does not make (speech WebSockets): the addresses a host may be
    connected to, every one checked (`BaseUrlRefusedError` otherwise), as `GuardedTCPConnector`
    does for HTTP. `resolve` replaces the system resolver."""

    async def addresses(host: str, port: int) -> list[str]:
        return [str(a) for a in await check_host(host, port, policy, resolve or resolve_host)]

    return addresses


async def check_base_url(url: str, policy: GuardPolicy, resolve: Resolve = resolve_host) -> list[IPAddress]:
    """Connect-time check of a whole base URL; returns the addresses that may be used."""
    base = validate_base_url(url, policy)
    addresses = await check_host(base.host, base.port, policy, resolve)
    _check_scheme(base, addresses, policy)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that checks every new TCP connection and connects to the checked address.

    TLS still verifies the original host name (httpcore sends the origin as SNI), so pinning
    the address costs nothing in security. The scheme rule is not visible here: pair this
    with `check_base_url` (or `guard_request_hook`) for plain-http refusal.
    """

    def __init__(
        self,
        policy: GuardPolicy,
        inner: httpcore.AsyncNetworkBackend | None = None,
        resolve: Resolve = resolve_host,
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await check_host(host, port, self._policy, self._resolve)
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BaseUrlRefusedError("invalid_url", "unix sockets are not allowed for provider endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    policy: GuardPolicy, resolve: Resolve = resolve_host, **kwargs: Any
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedNetworkBackend`.

    httpx does not take a network backend as an argument, so this sets it on the transport's
    connection pool (httpcore's `_network_backend`); tests/routing/test_guard.py pins that
    this still refuses a private address, so an httpx upgrade that moves it fails loudly.
    """
    if kwargs.get("proxy") is not None:
        raise ValueError("a guarded transport cannot go through a proxy")
    kwargs.setdefault("verify", tls_context())
    transport = httpx.AsyncHTTPTransport(**kwargs)
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's connection pool no longer exposes its network backend")
    pool._network_backend = GuardedNetworkBackend(policy, resolve=resolve)
    return transport


class GuardedTCPConnector(aiohttp.TCPConnector):
    """An aiohttp connector that checks every address it is about to connect to.

    aiohttp resolves (or, for an IP literal, skips resolving) in `_resolve_host` and connects
    to exactly the addresses returned, so checking them there both guards and pins. Cached
    DNS answers were checked when they were first resolved.
    """

    def __init__(self, policy: GuardPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard_policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        for resolved in hosts:
            check_address(host, resolved["host"], self._guard_policy)
        return hosts


def guarded_aiohttp_transport(
    policy: GuardPolicy,
    *,
    limits: httpx.Limits | None = None,
    resolver: aiohttp.abc.AbstractResolver | None = None,
) -> httpx.AsyncBaseTransport:
    """The `httpx-aiohttp` transport (the default upstream backend) with `GuardedTCPConnector`.

    Pass it as `UpstreamClients(transport_factory=lambda: guarded_aiohttp_transport(policy))`.
    tests/routing/test_guard.py pins that literals and resolved names are both checked.
    """
    from httpx_aiohttp import AiohttpTransport

    limits = limits or upstream_limits()

    def session() -> aiohttp.ClientSession:
        connector = GuardedTCPConnector(
            policy,
            limit=0,  # calls are bounded per origin by `providers.origin_slots`
            keepalive_timeout=limits.keepalive_expiry,
            ssl=tls_context(),
            resolver=resolver,
        )
        return upstream_session(connector)

    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits, trust_env=False, client=session)
    return transport


def guard_request_hook(
    policy: GuardPolicy, resolve: Resolve = resolve_host
) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx `event_hooks={"request": [...]}` hook checking each request's URL (scheme and addresses)."""

    async def hook(request: httpx.Request) -> None:
        await check_base_url(str(request.url.copy_with(query=None, fragment=None)), policy, resolve)

    return hook


def endpoint_guard(
    policy: GuardPolicy, resolve: Resolve = resolve_host
) -> Callable[[ConnectionView], Awaitable[None]]:
    """The executor's per-attempt check of a connection's custom base URL (`Executor(guard=...)`)."""

    async def guard(connection: ConnectionView) -> None:
        if connection.base_url:
            await check_base_url(connection.base_url, policy, resolve)

    return guard
