"""The routed API's long-lived objects, and the guarded upstream pool every surface shares.

`Gateway` holds the upstream HTTP pool, the cooldown store, the routing registry, the router,
the API-key cache, the rate limiter and the request log; `server.services.build_gateway` wires them once per
process, and the voice runtime and the CLI's connection test use the same pool. The pool comes
from `guarded_clients`: every address any of its clients connects to is checked (and pinned).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from providers.upstream_pool import DEFAULT_LIMITS, UpstreamClients, tls_context, upstream_session
from routing.catalog import Catalog
from routing.cooldown_store import CooldownStore
from routing.errors import BaseUrlRefusedError
from routing.guard import GuardedTCPConnector, GuardPolicy, Resolve, checked_resolver
from routing.model import ConnectionView
from routing.registry import Registry
from routing.router import Router
from server.activity.recorder import RequestLog
from server.v1.auth import ApiKeyCache
from server.v1.ratelimit import RateLimiter


class ResolveAsAiohttp(AbstractResolver):
    """A guard `Resolve` function as aiohttp's resolver, so the connector asks the same DNS
    as `check_base_url` (production keeps aiohttp's own; tests inject one fake for both)."""

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await self._resolve(host, port)
        ]

    async def close(self) -> None:
        return None


def guarded_session(
    policy: GuardPolicy, limits: httpx.Limits = DEFAULT_LIMITS, resolve: Resolve | None = None
) -> aiohttp.ClientSession:
    """aiohttp's client over `GuardedTCPConnector`: every address it connects to is checked.

    Used directly (not through httpx) for speed; see `providers.upstream_pool.DEFAULT_BACKEND`.
    `resolve` replaces aiohttp's DNS lookups (None: the system resolver).
    """
    connector = GuardedTCPConnector(
        policy,
        limit=0,  # calls are bounded per origin by `providers.origin_slots`
        keepalive_timeout=limits.keepalive_expiry or 30.0,
        ssl=tls_context(),
        resolver=ResolveAsAiohttp(resolve) if resolve is not None else None,
    )
    return upstream_session(connector)


def guarded_clients(
    policy: GuardPolicy,
    limits: httpx.Limits = DEFAULT_LIMITS,
    resolve: Resolve | None = None,
    *,
    client: Literal["h1", "aiohttp"] = "h1",
) -> UpstreamClients:
    """The upstream pool with the guard in every connection (`PATCHBAY_UPSTREAM_CLIENT`): Patchbay's
    own client resolves each new connection's host through the guard's checked resolver and
    connects to exactly those addresses; aiohttp's does the same in its connector
    (`guarded_session`). `resolve` replaces the system's DNS lookups in both."""
    checked = checked_resolver(policy, resolve)
    if client == "aiohttp":
        return UpstreamClients(
            limits=limits,
            session_factory=lambda: guarded_session(policy, limits, resolve=resolve),
            resolve_checked=checked,
        )
    return UpstreamClients(limits=limits, resolve_checked=checked)


class CachedEndpointGuard:
    """The executor's per-attempt base-URL check, remembered per URL for `ttl` seconds.

    The check resolves the host (a thread-pool DNS lookup), too slow to repeat on every
    request. Caching it weakens nothing: the HTTP client's guarded connector checks the
    addresses of every new upstream connection itself; this check exists to turn a refused
    URL into a `failed:guard:*` trace entry instead of a network error.
    """

    def __init__(
        self,
        check: Callable[[ConnectionView], Awaitable[None]],
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._verdicts: dict[str, tuple[float, BaseUrlRefusedError | None]] = {}

    async def __call__(self, connection: ConnectionView) -> None:
        url = connection.base_url or ""
        now = self._clock()
        cached = self._verdicts.get(url)
        if cached is None or cached[0] <= now:
            refused: BaseUrlRefusedError | None = None
            try:
                await self._check(connection)
            except BaseUrlRefusedError as exc:
                refused = exc
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            cached = self._verdicts[url] = (now + self._ttl, refused)
        if cached[1] is not None:
            raise BaseUrlRefusedError(cached[1].reason, str(cached[1]))


@dataclass
class Gateway:
    """The routed API's long-lived objects; `server.services.build_gateway` wires them."""

    upstream: UpstreamClients
    cooldowns: CooldownStore
    catalog: Catalog
    registry: Registry
    router: Router
    api_keys: ApiKeyCache
    rate_limiter: RateLimiter
    request_log: RequestLog
    """Each request of an org, behind the request (`server.activity`); started with the other writers."""

    async def start(self) -> None:
        await self.registry.start()

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.rate_limiter.aclose()
        await self.upstream.aclose()
        await self.cooldowns.aclose()
