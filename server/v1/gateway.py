"""The long-lived objects of the routed API, built once per process from the settings.

`Gateway.build` wires the upstream HTTP pool (with the base-URL guard inside its connector),
one adapter per wire protocol, the cooldown store, the routing registry, the executor, the
router, the API-key cache and the rate limiter. `Services` holds one; the voice session uses
its `router` too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.preflight import NoopPreflight, Preflight
from providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from providers.adapters.base import ChatAdapter
from providers.adapters.gemini_generate import GeminiGenerateAdapter
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import WireProtocol
from providers.http import DEFAULT_LIMITS, UpstreamClients
from providers.vault.store import Vault
from routing.catalog import Catalog, default_catalog
from routing.cooldown_store import CooldownStore, make_cooldown_store
from routing.errors import BaseUrlRefusedError
from routing.executor import Executor
from routing.guard import GuardedTCPConnector, GuardPolicy, endpoint_guard
from routing.model import ConnectionView
from routing.redis_health import redis_client
from routing.registry import Registry
from routing.resolver import Resolver
from routing.router import Router, UsageSink
from server.v1.auth import ApiKeyCache
from server.v1.ratelimit import RateLimit, RateLimiter, make_rate_limiter

DEFAULT_RATE_LIMIT = RateLimit(requests=600, per_seconds=60.0)
"""Per API key until the settings carry a value: 600 requests a minute, bursts of 600."""


def guarded_session(policy: GuardPolicy, limits: httpx.Limits = DEFAULT_LIMITS) -> aiohttp.ClientSession:
    """aiohttp's client over `GuardedTCPConnector`: every address it connects to is checked.

    Used directly (not through httpx) for speed; see `providers.http.DEFAULT_BACKEND`.
    """
    connector = GuardedTCPConnector(
        policy,
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry or 30.0,
        ssl=httpx.create_ssl_context(),
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


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
    upstream: UpstreamClients
    cooldowns: CooldownStore
    catalog: Catalog
    registry: Registry
    router: Router
    api_keys: ApiKeyCache
    rate_limiter: RateLimiter

    @classmethod
    def build(
        cls,
        *,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        usage: UsageSink,
        guard: GuardPolicy,
        redis_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        preflight: Preflight | None = None,
        catalog: Catalog | None = None,
        poll_interval: float = 2.0,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        redis_prefix: str = "patchbay:",
    ) -> Gateway:
        upstream = (
            UpstreamClients(transport_factory=transport_factory)
            if transport_factory is not None
            else UpstreamClients(session_factory=lambda: guarded_session(guard))
        )
        adapters: dict[WireProtocol, ChatAdapter] = {
            WireProtocol.OPENAI_CHAT: OpenAIChatAdapter(upstream),
            WireProtocol.ANTHROPIC_MESSAGES: AnthropicMessagesAdapter(upstream),
            WireProtocol.GEMINI_GENERATE: GeminiGenerateAdapter(upstream),
        }
        catalog = catalog or default_catalog()
        resolver = Resolver(catalog)
        cooldowns = make_cooldown_store(redis_url, prefix=redis_prefix)
        registry = Registry(
            sessions,
            vault,
            environ=environ,
            poll_interval=poll_interval,
            redis=redis_client(redis_url) if redis_url else None,
            channel=f"{redis_prefix}config",
            cooldowns=cooldowns,
        )
        executor = Executor(
            resolver=resolver,
            store=cooldowns,
            credentials=registry.credential,
            adapters=adapters,
            guard=CachedEndpointGuard(endpoint_guard(guard)),
        )
        router = Router(
            registry=registry,
            resolver=resolver,
            executor=executor,
            usage=usage,
            preflight=preflight or NoopPreflight(),
        )
        api_keys = ApiKeyCache(sessions)
        registry.add_listener(api_keys.drop_org)
        registry.poll_hooks.append(api_keys.poll)
        return cls(
            upstream=upstream,
            cooldowns=cooldowns,
            catalog=catalog,
            registry=registry,
            router=router,
            api_keys=api_keys,
            rate_limiter=make_rate_limiter(rate_limit, redis_url, prefix=redis_prefix),
        )

    async def start(self) -> None:
        await self.registry.start()

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.rate_limiter.aclose()
        await self.upstream.aclose()
        await self.cooldowns.aclose()
