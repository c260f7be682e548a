"""The long-lived objects one server process holds, built once at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from billing.usage import UsageRecorder, new_usage_recorder
from providers.adapters import chat_adapters
from providers.vault.audit import DecryptAuditWriter
from providers.vault.store import Vault
from routing.agents import Agents
from routing.connections import Connections
from routing.guard import GuardPolicy
from routing.verify import VerifyTools
from server.admin.token import AdminTokenError, load_admin_token
from server.db import Database, head_revision
from server.settings import Settings
from server.v1.ratelimit import RateLimit
from server.vault_keys import build_vault

if TYPE_CHECKING:
    from server.v1.gateway import Gateway


class StartupError(RuntimeError):
    """The server must not start; the message says what the operator has to fix."""


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    audit: DecryptAuditWriter
    usage: UsageRecorder
    expected_revision: str = field(default_factory=head_revision)
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-surface state built lazily (the voice runtime); any with an `aclose()` is closed with the services."""
    config_listeners: list[Callable[[str], None]] = field(default_factory=list)
    gateway: Gateway | None = None
    """The routed API's long-lived objects (upstream pool, registry, router, key cache, rate limiter)."""
    admin_token: SecretStr | None = None
    """What the admin API accepts (server/admin/token.py); None: the admin API is off."""

    @property
    def guard(self) -> GuardPolicy:
        return GuardPolicy(
            allow_private=self.settings.allow_private_base_urls,
            allow_plain_http=self.settings.allow_plain_http_base_urls,
        )

    def connections(self, actor: str = "admin") -> Connections:
        return Connections(self.vault, self.guard, actor=actor)

    def agents(self, actor: str = "admin") -> Agents:
        return Agents(actor=actor)

    def config_changed(self, org_id: str) -> None:
        """An org's routing configuration changed in this process: drop cached snapshots."""
        for listener in self.config_listeners:
            listener(org_id)

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Services:
        try:
            admin = load_admin_token(settings)
        except AdminTokenError as exc:
            raise StartupError(str(exc)) from None
        database = db or Database(settings.resolved_database_url)
        audit = DecryptAuditWriter(database.sessions)
        services = cls(
            settings=settings,
            db=database,
            vault=build_vault(settings, database, audit),
            audit=audit,
            usage=new_usage_recorder(database.sessions),
            admin_token=admin.value if admin else None,
        )
        services.attach_gateway()
        return services

    def attach_gateway(self, **overrides: Any) -> Gateway:
        """Build the routed API's objects (`overrides` go to `Gateway.build`, e.g. a rate limit)."""
        from server.v1.gateway import Gateway

        if self.gateway is not None:
            self.config_listeners.remove(self.gateway.registry.changed)
        limit = self.settings.rate_limit
        overrides.setdefault("rate_limit", RateLimit(requests=limit[0], per_seconds=limit[1]) if limit else None)
        self.gateway = Gateway.build(
            sessions=self.db.sessions,
            vault=self.vault,
            usage=self.usage,
            guard=self.guard,
            redis_url=self.settings.redis_url,
            environ=os.environ,
            **overrides,
        )
        self.config_listeners.append(self.gateway.registry.changed)
        return self.gateway

    def verify_tools(self) -> VerifyTools:
        gateway = self.require_gateway()
        return VerifyTools(
            clients=gateway.upstream, adapters=chat_adapters(gateway.upstream), catalog=gateway.catalog, guard=self.guard
        )

    def require_gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the routed API is not attached")
        return self.gateway

    async def start(self) -> None:
        """Start background work and refuse to run with master keys that cannot open the vault."""
        from providers.vault.errors import VaultError

        try:
            async with self.db.session() as session:
                await self.vault.check_keys(session)
        except VaultError as exc:
            raise StartupError(str(exc)) from None
        self.audit.start()
        self.usage.start()
        if self.gateway is not None:
            await self.gateway.start()

    async def aclose(self) -> None:
        for extra in list(self.extras.values()):
            close = getattr(extra, "aclose", None)
            if close is not None:
                await close()
        if self.gateway is not None:
            await self.gateway.aclose()
        await self.usage.aclose()
        await self.audit.aclose()
        await self.db.dispose()
