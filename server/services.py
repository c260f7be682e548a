"""The composition root: every long-lived object one process holds, built once from the settings.

`Services.build` is the only place the parts are wired: the database, vault, audit and usage
writers, the credits ledger and its hold sweeper, the routed API (`build_gateway`: upstream
pool, cooldowns, registry, router, API-key cache, rate limiter, request log), the voice runtime
and the failed-authentication throttle; serving adds the request log's retention sweeper. The
/v1 app, realtime, Twilio and the CLI all read
them from here (`app.state.services` in the server), so a connection test from the CLI goes
through the same guarded upstream pool as a chat request. `build_router` is the one function
that turns the pool into adapters, an executor and a router; replace it there and every surface
follows.

Tests and benchmarks substitute parts through `Overrides` (fake DNS, voice engines, an LLM);
production passes none. Settings stay the way to configure; overrides are for what no setting
can express.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import SecretStr

from billing.credits_preflight import LedgerPreflight
from billing.lease import LeaseBook
from billing.ledger import Ledger
from billing.ledger_sweeper import HoldSweeper
from billing.policy import billing_policy
from billing.preflight import NoopPreflight, Preflight
from billing.spend_caps import SpendCaps
from billing.tiers import TierTable, default_table
from billing.usage import UsageRecorder, new_usage_recorder
from foundation.db import utcnow
from providers.adapters import chat_adapters
from providers.upstream_pool import UpstreamClients, upstream_limits
from providers.vault.audit import DecryptAuditWriter
from providers.vault.store import Vault
from routing.agents import Agents
from routing.catalog import Catalog, default_catalog
from routing.connections import Connections
from routing.cooldown_store import CooldownStore, RedisCooldownStore, make_cooldown_store
from routing.env_reference import allowed_environ
from routing.executor import Executor
from routing.guard import GuardPolicy, Resolve, endpoint_guard, resolve_host
from routing.health_probe import HealthProbe
from routing.redis_health import redis_client
from routing.registry import Registry
from routing.resolver import Resolver
from routing.router import Router, UsageSink
from routing.speech import BuiltIn
from routing.verify import VerifyTools
from server.activity.recorder import RequestLog
from server.activity.retention import RetentionSweeper
from server.admin.token import AdminTokenError, load_admin_token
from server.auth_throttle import AuthThrottle
from server.db import Database, head_revision
from server.payments.client import StripePayments, commercial_table
from server.payments.grace import GraceSweeper
from server.payments.usage_reports import UsageReporter
from server.payments.webhook import Webhook
from server.realtime.call_checkpoint import CallCheckpoints
from server.realtime.runtime import EnginesFactory, LLMFactory, VoiceRuntime
from server.settings import Settings
from server.v1.auth import ApiKeyCache
from server.v1.gateway import CachedEndpointGuard, Gateway, guarded_clients
from server.v1.last_used import LastUsedWriter
from server.v1.prewarm import Prewarm
from server.v1.ratelimit import RateLimit, make_rate_limiter
from server.vault_keys import build_vault

REDIS_PREFIX = "patchbay:"


class StartupError(RuntimeError):
    """The server must not start; the message says what the operator has to fix."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """Parts a test or a benchmark substitutes; every field left None is built for production."""

    resolve: Resolve | None = None
    """DNS for the base-URL guard: the check before each attempt and the guarded connector's
    own lookups both ask it, so a fake can answer differently at check and at connect."""
    voice_engines: EnginesFactory | None = None
    """Every caller's STT and TTS, instead of chains built from the org's connections."""
    internal_engines: BuiltIn | None = None
    """The offline engines at the end of every chain, instead of loading Whisper and espeak-ng."""
    voice_llm: LLMFactory | None = None
    """Each voice session's LLM, instead of the router."""
    preflight: Preflight | None = None
    """The credits check before a platform-paid segment (default: none)."""
    auth_throttle: AuthThrottle | None = None
    """Failed-authentication throttling on a clock, sleep and store the test chooses."""
    now: Callable[[], datetime] | None = None
    """The wall clock server API keys expire by (and their last use is stamped with), and the one
    `patchbay import openclaw` compares cooldown windows and token expiry with."""
    billing_clock: Callable[[], datetime] | None = None
    """The clock of the ledger (entry times, hold expiry), its sweeper and the spend caps' month."""


def build_router(
    upstream: UpstreamClients,
    *,
    catalog: Catalog,
    cooldowns: CooldownStore,
    registry: Registry,
    usage: UsageSink,
    guard: GuardPolicy,
    resolve: Resolve,
    preflight: Preflight,
) -> Router:
    """The one place adapters, the executor and the router are wired over the upstream pool."""
    resolver = Resolver(catalog)
    executor = Executor(
        resolver=resolver,
        store=cooldowns,
        credentials=registry.credential,
        adapters=chat_adapters(upstream),
        guard=CachedEndpointGuard(endpoint_guard(guard, resolve)),
    )
    return Router(registry=registry, resolver=resolver, executor=executor, usage=usage, preflight=preflight)


def build_gateway(
    settings: Settings,
    db: Database,
    vault: Vault,
    usage: UsageSink,
    overrides: Overrides,
    *,
    environ: Mapping[str, str],
    preflight: Preflight | None = None,
) -> Gateway:
    """The routed API's objects; Redis (when configured) carries cooldowns, limits and change notices.
    `preflight`: billing's hold seam (`Overrides.preflight` wins); none: nothing is held or charged."""
    guard = guard_policy(settings)
    resolve = overrides.resolve
    limits = upstream_limits(settings.upstream_connections)
    upstream = guarded_clients(guard, limits, resolve, client=settings.upstream_client)
    catalog = default_catalog()
    redis_url = settings.redis_url
    cooldowns = make_cooldown_store(
        redis_url, prefix=REDIS_PREFIX, copy_seconds=settings.cooldown_copy_seconds
    )
    registry = Registry(
        db.read_sessions,  # it only reads: snapshots, change counters, and its poll hooks
        vault,
        billing_policy=billing_policy,
        environ=environ,
        redis=redis_client(redis_url) if redis_url else None,
        channel=f"{REDIS_PREFIX}config",
        cooldowns=cooldowns,
        cache_size=settings.org_cache_size,
    )
    if isinstance(cooldowns, RedisCooldownStore):
        registry.add_notice_listener(cooldowns)
    router = build_router(
        upstream,
        catalog=catalog,
        cooldowns=cooldowns,
        registry=registry,
        usage=usage,
        guard=guard,
        resolve=resolve or resolve_host,
        preflight=overrides.preflight or preflight or NoopPreflight(),
    )
    now = overrides.now or utcnow
    api_keys = ApiKeyCache(
        db.read_sessions,
        now=now,
        last_used=LastUsedWriter(db.sessions, now=now),
        size=settings.api_key_cache_size,
        orgs=registry,
    )
    registry.add_listener(api_keys.drop_org)
    registry.poll_hooks.append(api_keys.poll)
    limit = settings.rate_limit
    rate_limit = RateLimit(requests=limit[0], per_seconds=limit[1]) if limit else None
    return Gateway(
        upstream=upstream,
        cooldowns=cooldowns,
        catalog=catalog,
        registry=registry,
        router=router,
        api_keys=api_keys,
        rate_limiter=make_rate_limiter(rate_limit, redis_url, prefix=REDIS_PREFIX),
        request_log=RequestLog(
            db.sessions, retention_days=settings.request_log_retention_days, registry=registry
        ),
    )


def services_environ(settings: Settings) -> dict[str, str]:
    """The environment references connections may read: the allowlisted part of this process's environment."""
    return allowed_environ(settings.env_references, os.environ)


def guard_policy(settings: Settings) -> GuardPolicy:
    return GuardPolicy(
        allow_private=settings.allow_private_base_urls,
        allow_plain_http=settings.allow_plain_http_base_urls,
    )


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    audit: DecryptAuditWriter
    usage: UsageRecorder
    gateway: Gateway
    """The routed API's long-lived objects (upstream pool, registry, router, key cache, rate limiter)."""
    voice: VoiceRuntime
    """Realtime and Twilio sessions, and /v1/audio: signer, session limiter, engines, metrics."""
    auth_throttle: AuthThrottle
    """Failed authentication per client address: slowed, then locked out (server/auth_throttle.py)."""
    ledger: Ledger
    """The credits ledger (billing/ledger.py); its sweeper releases expired holds while serving."""
    sweeper: HoldSweeper
    leases: LeaseBook
    """This process's credit leases and settle journal (billing/lease.py): on while serving."""
    spend_caps: SpendCaps
    """Monthly budgets and per-key spend limits, from memory (billing/spend_caps.py); refreshed
    by the registry's config poll."""
    overrides: Overrides = field(default_factory=Overrides)
    admin_token: SecretStr | None = None
    """What the admin API accepts (server/admin/token.py); None: the admin API is off."""
    expected_revision: str = field(default_factory=head_revision)
    config_listeners: list[Callable[[str], None]] = field(default_factory=list)
    retention: RetentionSweeper | None = None
    """Deletes request-log rows past the retention setting; runs only while serving."""
    payments: StripePayments | None = None
    """Stripe (server/payments); None when PATCHBAY_STRIPE_SECRET_KEY is unset: purchases are off."""
    webhook: Webhook | None = None
    """Applies Stripe's webhook events (with `payments`)."""
    prewarm: Prewarm | None = None
    """Loads the most recently used keys and their orgs after start-up (server/v1/prewarm.py)."""
    health_probe: HealthProbe | None = None
    """The scheduled health probe; runs only while serving, when PATCHBAY_HEALTH_PROBE_INTERVAL is set."""
    grace: GraceSweeper | None = None
    """Moves orgs whose failed-payment grace period ended to their fallback tier (with `payments`)."""
    usage_reporter: UsageReporter | None = None
    """Sends the BYOK surcharge to Stripe as meter events in batches (with `payments`)."""
    tiers: TierTable = field(default_factory=default_table)
    """The tier table with this server's Stripe prices (PATCHBAY_STRIPE_TIER_PRICES): what the
    plans page shows and checkout, the webhook and the grace sweeper apply."""

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database | None = None,
        overrides: Overrides | None = None,
        *,
        admin_api: bool = True,
    ) -> Services:
        """Everything, built once. `admin_api=False` (the CLI, which serves no admin API) leaves
        the admin token alone instead of reading or generating its file."""
        overrides = overrides or Overrides()
        try:
            admin = load_admin_token(settings) if admin_api else None
        except AdminTokenError as exc:
            raise StartupError(str(exc)) from None
        database = db or Database(settings.resolved_database_url)
        audit = DecryptAuditWriter(database.sessions)
        vault = build_vault(settings, database, audit)
        usage = new_usage_recorder(database.sessions)
        # The CLI and the server are edges: both may read the environment references the operator allowed.
        clock = overrides.billing_clock or utcnow
        hold_ttl = timedelta(seconds=settings.billing_hold_ttl_seconds)
        ledger = Ledger(database.sessions, hold_ttl=hold_ttl, clock=clock)
        spend_caps = SpendCaps(database.sessions, clock=clock, hold_ttl=hold_ttl)
        leases = LeaseBook(ledger, settings.data_dir / "journal", clock=clock)
        gateway = build_gateway(
            settings,
            database,
            vault,
            usage,
            overrides,
            environ=services_environ(settings),
            preflight=LedgerPreflight(ledger, spend_caps, leases),
        )
        gateway.registry.poll_hooks.append(spend_caps.poll)
        voice = VoiceRuntime.from_settings(
            settings,
            gateway,
            internal=overrides.internal_engines,
            engines=overrides.voice_engines,
            llm=overrides.voice_llm,
            checkpoints=(
                CallCheckpoints(database, settings.voice_max_session_seconds)
                if settings.twilio_call_checkpoints
                else None
            ),
        )
        services = cls(
            settings=settings,
            db=database,
            vault=vault,
            audit=audit,
            usage=usage,
            gateway=gateway,
            voice=voice,
            auth_throttle=overrides.auth_throttle
            or AuthThrottle.from_settings(settings, prefix=REDIS_PREFIX),
            ledger=ledger,
            sweeper=HoldSweeper(
                ledger, interval=min(60.0, settings.billing_hold_ttl_seconds / 4), clock=clock
            ),
            leases=leases,
            spend_caps=spend_caps,
            overrides=overrides,
            admin_token=admin.value if admin else None,
        )
        services.config_listeners.append(gateway.registry.changed)
        services.tiers = commercial_table(settings)
        services.payments = StripePayments.from_settings(settings, services.tiers)
        if services.payments is not None:
            services.webhook = Webhook(
                services.payments, database.sessions, ledger, changed=services.config_changed
            )
            services.grace = GraceSweeper(
                database.sessions, services.tiers, changed=services.config_changed, clock=clock
            )
            services.usage_reporter = UsageReporter(services.payments, database.sessions, ledger, clock=clock)
        return services

    @property
    def guard(self) -> GuardPolicy:
        return guard_policy(self.settings)

    def connections(self, actor: str = "admin") -> Connections:
        return Connections(self.vault, self.guard, actor=actor, env_references=self.settings.env_references)

    def agents(self, actor: str = "admin") -> Agents:
        return Agents(actor=actor)

    def config_changed(self, org_id: str) -> None:
        """An org's routing configuration changed in this process: drop cached snapshots."""
        for listener in self.config_listeners:
            listener(org_id)

    def verify_tools(self) -> VerifyTools:
        """Connection tests' tools, over the gateway's guarded pool and the same DNS."""
        upstream = self.gateway.upstream
        return VerifyTools(
            clients=upstream,
            adapters=chat_adapters(upstream),
            catalog=self.gateway.catalog,
            guard=self.guard,
            resolve=self.overrides.resolve or resolve_host,
        )

    def start_writers(self) -> None:
        """Start the audit, usage and request-log writers: all a one-shot command (the CLI) needs running."""
        self.audit.start()
        self.usage.start()
        self.gateway.request_log.start()

    async def start(self) -> None:
        """Serve: refuse master keys that cannot open the vault, then start the writers, the
        registry's change polling and the API keys' last-used writer."""
        from providers.vault.errors import VaultError

        try:
            async with self.db.session() as session:
                await self.vault.check_keys(session)
        except VaultError as exc:
            raise StartupError(str(exc)) from None
        self.start_writers()
        await self.usage.open_journal(self.settings.data_dir / "usage-journal")
        await self.gateway.start()
        self.gateway.api_keys.last_used.start()
        self.prewarm = Prewarm(
            self.db.read_sessions,
            self.gateway.api_keys,
            self.gateway.registry,
            limit=self.settings.org_prewarm,
        )
        self.prewarm.start()
        await self.leases.start()
        self.sweeper.start()
        self.retention = RetentionSweeper(
            self.db.sessions, retention_days=self.settings.request_log_retention_days
        )
        self.retention.start()
        if self.settings.health_probe_interval > 0:
            self.health_probe = HealthProbe(
                self.db.sessions,
                self.gateway.registry.credential_for,
                self.verify_tools,
                interval=self.settings.health_probe_interval,
                include_platform=self.settings.health_probe_platform,
            )
            self.health_probe.start()
        for task in (self.grace, self.usage_reporter):
            if task is not None:
                task.start()

    async def aclose(self) -> None:
        if self.prewarm is not None:
            await self.prewarm.aclose()
        if self.health_probe is not None:
            await self.health_probe.aclose()
        await self.sweeper.aclose()
        for task in (self.grace, self.usage_reporter):
            if task is not None:
                await task.aclose()
        await self.leases.aclose()
        if self.payments is not None:
            await self.payments.aclose()
        if self.retention is not None:
            await self.retention.aclose()
        await self.voice.aclose()
        await self.auth_throttle.aclose()
        await self.gateway.api_keys.last_used.aclose()
        await self.gateway.aclose()
        await self.gateway.request_log.aclose()
        await self.usage.aclose()
        await self.audit.aclose()
        await self.db.dispose()
