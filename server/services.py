"""The long-lived objects one server process holds, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from billing.usage import UsageRecorder, new_usage_recorder
from providers.vault.audit import BufferedAuditWriter
from providers.vault.store import Vault
from routing.agents import Agents
from routing.connections import Connections
from routing.guard import GuardPolicy
from server.db import Database, head_revision
from server.settings import Settings
from server.vault_keys import build_vault


class StartupError(RuntimeError):
    """The server must not start; the message says what the operator has to fix."""


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    audit: BufferedAuditWriter
    usage: UsageRecorder
    expected_revision: str = field(default_factory=head_revision)
    extras: dict[str, Any] = field(default_factory=dict)
    config_listeners: list[Callable[[str], None]] = field(default_factory=list)

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
        database = db or Database(settings.resolved_database_url)
        audit = BufferedAuditWriter(database.sessions)
        return cls(
            settings=settings,
            db=database,
            vault=build_vault(settings, database, audit),
            audit=audit,
            usage=new_usage_recorder(database.sessions),
        )

    async def start(self) -> None:
        """Start background work and refuse to run with master keys that cannot open the vault."""
        from providers.vault.errors import VaultError

        self.audit.start()
        self.usage.start()
        try:
            async with self.db.session() as session:
                await self.vault.check_keys(session)
        except VaultError as exc:
            raise StartupError(str(exc)) from None

    async def aclose(self) -> None:
        await self.usage.aclose()
        await self.audit.aclose()
        await self.db.dispose()
