"""AI Connections: create, list, update, replace key, revoke, delete, reorder.

A connection belongs to an org, or (`org_id=None` on every method) to the operator: a platform
connection every org may route to as its tier allows, billed `platform`. Keys arrive as `Secret`s and go straight into the vault; nothing here returns one. Every
change is audited and reported to `on_change` so in-memory routing snapshots are rebuilt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices import Price
from foundation.audit import AuditEvent
from foundation.db import new_id, utcnow
from foundation.errors import ConflictError, NotFoundError, RequestError
from providers.contract import (
    PRESETS,
    CredentialKind,
    CredentialSource,
    ProviderId,
    billing_source_for,
    credential_source_for,
)
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing.config_versions import bump
from routing.connection_limit import check_connection_limit
from routing.declared_models import declared_models as _models
from routing.declared_models import with_prices as _with_prices
from routing.env_reference import check_env_reference
from routing.guard import GuardPolicy, validate_base_url
from routing.model import ConnectionStatus
from routing.platform import scope_of
from routing.tables import Connection, OrgAISettings

KEY_FIELD = "api_key"
MAX_KEY_CHARS = 4096
"""Longer than any provider's key (service-account JSON included); a bigger one is a paste error."""
MAX_BASE_URL_CHARS = 2048
"""Bounds on what a connection row stores: every surface shows and snapshots these whole."""
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_RESERVED_NAMES = frozenset(p.value for p in ProviderId)
CONNECTABLE = frozenset(ProviderId) - {ProviderId.INTERNAL}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fingerprint: str
    set_at: datetime | None


@dataclass(frozen=True, slots=True)
class Health:
    status: str | None
    checked_at: datetime | None
    latency_ms: int | None
    error_class: str | None
    models_found: list[str] | None


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What every surface may show about a connection: never the key, only its fingerprint."""

    id: str
    org_id: str | None
    """None for a platform connection."""
    profile_id: str
    provider: str
    name: str
    base_url: str | None
    status: str
    position: int
    credential_kind: str
    credential_source: str
    billing_source: str
    key: KeyInfo | None
    env_reference: str | None
    models: list[dict[str, Any]]
    health: Health
    created_at: datetime
    updated_at: datetime

    @property
    def platform(self) -> bool:
        return self.org_id is None


def _owned_by(org_id: str | None) -> ColumnElement[bool]:
    return Connection.org_id.is_(None) if org_id is None else Connection.org_id == org_id


def describe(row: Connection) -> ConnectionInfo:
    key = KeyInfo(row.key_fingerprint, row.key_set_at) if row.key_fingerprint else None
    return ConnectionInfo(
        id=row.id,
        org_id=row.org_id,
        profile_id=row.profile_id,
        provider=row.provider,
        name=row.name,
        base_url=row.base_url,
        status=row.status,
        position=row.position,
        credential_kind=row.credential_kind,
        credential_source=row.credential_source,
        billing_source=billing_source_for(CredentialSource(row.credential_source)).value,
        key=key,
        env_reference=row.env_reference,
        models=list(row.models or []),
        health=Health(
            row.health_status,
            row.health_checked_at,
            row.health_latency_ms,
            row.health_error_class,
            row.health_models,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _provider(value: str) -> ProviderId:
    try:
        provider = ProviderId(value.strip().lower())
    except ValueError:
        choices = ", ".join(sorted(p.value for p in CONNECTABLE))
        raise RequestError(f"unknown provider {value!r}; choose one of {choices}", param="provider") from None
    if provider not in CONNECTABLE:
        raise RequestError("the internal engines need no connection", param="provider")
    return provider


PLATFORM_DEFAULT_NAME = "platform"
"""A platform connection's default name: unlike `default`, it never collides with an org's own."""


def _name(provider: ProviderId, name: str | None, *, platform: bool = False) -> str:
    if name is None:
        if provider is ProviderId.OPENAI_COMPATIBLE:
            raise RequestError(
                "a custom endpoint needs a name: it becomes the provider part of its model refs", param="name"
            )
        return PLATFORM_DEFAULT_NAME if platform else "default"
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise RequestError(
            "connection names are 1-64 lower-case letters, digits, '_', '.', '-'", param="name"
        )
    if provider is ProviderId.OPENAI_COMPATIBLE and name in _RESERVED_NAMES:
        raise RequestError(f"{name!r} is a provider id; a custom endpoint needs another name", param="name")
    return name


def _bounded_base_url(base_url: str) -> None:
    if len(base_url) > MAX_BASE_URL_CHARS:
        raise RequestError(f"base URLs are at most {MAX_BASE_URL_CHARS} characters", param="base_url")


def key_secret(value: str) -> Secret:
    """A key as a surface received it, refused with a clear error when empty or oversized."""
    if not value.strip():
        raise RequestError("the key is empty", param="key")
    if len(value) > MAX_KEY_CHARS:
        raise RequestError(f"the key is longer than {MAX_KEY_CHARS} characters", param="key")
    return Secret(value)


class Connections:
    """The service behind the admin API and the CLI."""

    def __init__(
        self,
        vault: Vault,
        guard: GuardPolicy,
        *,
        actor: str = "admin",
        env_references: frozenset[str] = frozenset(),
    ) -> None:
        """`env_references`: the environment variables a connection may name (PATCHBAY_ENV_REFERENCE_ALLOW)."""
        self.vault = vault
        self.guard = guard
        self.actor = actor
        self.env_references = env_references

    async def create(
        self,
        session: AsyncSession,
        org_id: str | None,
        *,
        provider: str,
        name: str | None = None,
        base_url: str | None = None,
        models: Sequence[str | dict[str, Any]] | None = None,
        key: Secret | None = None,
        env_reference: str | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> ConnectionInfo:
        """`prices` (model id -> price) sets the prices of declared models, as their `price` field may."""
        pid = _provider(provider)
        conn_name = _name(pid, name, platform=org_id is None)
        if base_url is not None:
            _bounded_base_url(base_url)
            validate_base_url(base_url, self.guard)
            base_url = base_url.strip().rstrip("/")
        elif not PRESETS[pid].base_url:
            raise RequestError("a custom endpoint needs a base URL", param="base_url")
        if key is not None and env_reference is not None:
            raise RequestError("give a key or an environment reference, not both")
        if env_reference is not None:
            env_reference = check_env_reference(env_reference, self.env_references)
        if key is None and env_reference is None and CredentialKind.NONE not in PRESETS[pid].credential_kinds:
            raise RequestError(
                f"{PRESETS[pid].display_name} needs a key, or an environment reference naming a server "
                "variable that holds it",
                param="key",
            )
        existing = await session.scalar(
            select(Connection.id).where(
                _owned_by(org_id), Connection.provider == pid.value, Connection.name == conn_name
            )
        )
        if existing is not None:
            raise ConflictError(f"connection {pid.value}:{conn_name} already exists", param="name")
        if org_id is not None:
            await check_connection_limit(session, org_id)
        siblings = (
            await session.scalars(
                select(Connection.position).where(_owned_by(org_id), Connection.provider == pid.value)
            )
        ).all()
        row = Connection(
            id=new_id("conn"),
            org_id=org_id,
            provider=pid.value,
            name=conn_name,
            base_url=base_url,
            position=max(siblings, default=-1) + 1,
            status=ConnectionStatus.ACTIVE.value,
            credential_kind=(CredentialKind.API_KEY if key or env_reference else CredentialKind.NONE).value,
            credential_source=credential_source_for(
                pid, org_owned=org_id is not None, env_reference=env_reference is not None
            ).value,
            env_reference=env_reference,
            models=_with_prices(_models(models), prices or {}),
        )
        session.add(row)
        await session.flush()
        if key is not None:
            info = await self.vault.put(
                session,
                org_id=scope_of(org_id),
                owner_id=row.id,
                field=KEY_FIELD,
                plaintext=key,
                actor=self.actor,
            )
            row.secret_id, row.key_fingerprint, row.key_set_at = info.id, info.fingerprint, utcnow()
        self._audit(session, row, "connection.create")
        await bump(session, scope_of(org_id))
        await session.flush()
        return describe(row)

    async def get(self, session: AsyncSession, org_id: str | None, ref: str) -> Connection:
        """By id, or by profile id `provider:name`."""
        if ":" in ref:
            provider, _, name = ref.partition(":")
            row = await session.scalar(
                select(Connection).where(
                    _owned_by(org_id), Connection.provider == provider, Connection.name == name
                )
            )
        else:
            row = await session.get(Connection, ref)
            row = row if row is not None and row.org_id == org_id else None
        if row is None:
            raise NotFoundError(await _not_found(session, org_id, ref))
        return row

    async def list_all(self, session: AsyncSession, org_id: str | None) -> list[ConnectionInfo]:
        rows = await session.scalars(
            select(Connection)
            .where(_owned_by(org_id))
            .order_by(Connection.provider, Connection.position, Connection.name)
        )
        return [describe(r) for r in rows]

    async def update(
        self,
        session: AsyncSession,
        org_id: str | None,
        ref: str,
        *,
        base_url: str | None = None,
        models: Sequence[str | dict[str, Any]] | None = None,
        enabled: bool | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> ConnectionInfo:
        """`models` replaces the declared models; `prices` (model id -> price) then sets the
        prices of declared ones, keeping the rest."""
        row = await self.get(session, org_id, ref)
        if base_url is not None:
            _bounded_base_url(base_url)
            validate_base_url(base_url, self.guard)
            row.base_url = base_url.strip().rstrip("/")
        if models is not None:
            row.models = _models(models)
        if prices:
            row.models = _with_prices(list(row.models or []), prices)
        if enabled is not None:
            if row.status == ConnectionStatus.REVOKED.value:
                raise RequestError("a revoked connection cannot be re-enabled; set a new key instead")
            row.status = (ConnectionStatus.ACTIVE if enabled else ConnectionStatus.DISABLED).value
        self._audit(session, row, "connection.update")
        await bump(session, scope_of(org_id))
        await session.flush()
        return describe(row)

    async def replace_key(
        self, session: AsyncSession, org_id: str | None, ref: str, key: Secret
    ) -> ConnectionInfo:
        """A new key under the same connection id, history and routing position; re-activates a revoked one."""
        row = await self.get(session, org_id, ref)
        if row.secret_id is None:
            info = await self.vault.put(
                session,
                org_id=scope_of(org_id),
                owner_id=row.id,
                field=KEY_FIELD,
                plaintext=key,
                actor=self.actor,
            )
        else:
            info = await self.vault.replace(
                session,
                secret_id=row.secret_id,
                org_id=scope_of(org_id),
                owner_id=row.id,
                field=KEY_FIELD,
                plaintext=key,
                actor=self.actor,
            )
        row.secret_id, row.key_fingerprint, row.key_set_at = info.id, info.fingerprint, utcnow()
        row.credential_kind, row.env_reference = CredentialKind.API_KEY.value, None
        if row.status == ConnectionStatus.REVOKED.value:
            row.status = ConnectionStatus.ACTIVE.value
        self._audit(session, row, "connection.key_replaced", fingerprint=info.fingerprint)
        await bump(session, scope_of(org_id))
        await session.flush()
        return describe(row)

    async def revoke(self, session: AsyncSession, org_id: str | None, ref: str) -> ConnectionInfo:
        """Stop using the connection and destroy its key; the record and its history stay."""
        row = await self.get(session, org_id, ref)
        secret_id, row.secret_id = row.secret_id, None
        fingerprint, row.key_fingerprint, row.key_set_at = row.key_fingerprint, None, None
        row.status = ConnectionStatus.REVOKED.value
        await session.flush()
        if secret_id is not None:
            await self.vault.delete(session, secret_id=secret_id, org_id=scope_of(org_id), actor=self.actor)
        self._audit(
            session, row, "connection.revoke", **({"fingerprint": fingerprint} if fingerprint else {})
        )
        await bump(session, scope_of(org_id))
        await session.flush()
        return describe(row)

    async def delete(self, session: AsyncSession, org_id: str | None, ref: str) -> ConnectionInfo:
        row = await self.get(session, org_id, ref)
        info = describe(row)
        secret_id = row.secret_id
        self._audit(session, row, "connection.delete")
        await session.delete(row)
        await bump(session, scope_of(org_id))
        await session.flush()
        if secret_id is not None:
            await self.vault.delete(session, secret_id=secret_id, org_id=scope_of(org_id), actor=self.actor)
        return info

    async def reorder(
        self, session: AsyncSession, org_id: str | None, provider: str, profile_ids: Sequence[str]
    ) -> list[ConnectionInfo]:
        """Set the explicit order of one provider's profiles; every profile must be named once."""
        pid = _provider(provider)
        rows = list(
            await session.scalars(
                select(Connection).where(_owned_by(org_id), Connection.provider == pid.value)
            )
        )
        by_profile = {r.profile_id: r for r in rows}
        wanted = [p if ":" in p else f"{pid.value}:{p}" for p in profile_ids]
        if sorted(wanted) != sorted(by_profile):
            raise RequestError(
                f"name every {pid.value} connection exactly once: {', '.join(sorted(by_profile))}"
            )
        for position, profile in enumerate(wanted):
            by_profile[profile].position = position
            self._audit(session, by_profile[profile], "connection.reorder", position=str(position))
        if org_id is not None:  # platform connections are always tried in the operator's order
            settings = await session.get(OrgAISettings, org_id)
            if settings is None:
                settings = OrgAISettings(org_id=org_id, routing={})
                session.add(settings)
            settings.profile_order_explicit = sorted({*(settings.profile_order_explicit or []), pid.value})
        await bump(session, scope_of(org_id))
        await session.flush()
        return [describe(by_profile[p]) for p in wanted]

    def _audit(self, session: AsyncSession, row: Connection, action: str, **details: str) -> None:
        session.add(
            AuditEvent(
                org_id=row.org_id,
                actor=self.actor,
                action=action,
                target_type="connection",
                target_id=row.id,
                details={"profile": row.profile_id, **details},
            )
        )


async def _not_found(session: AsyncSession, org_id: str | None, ref: str) -> str:
    """`no connection 'mylab'`, suggesting the profile ids a bare name or provider may have meant."""
    name = ref.partition(":")[2] if ":" in ref else ref
    rows = await session.scalars(
        select(Connection).where(_owned_by(org_id), (Connection.name == name) | (Connection.provider == ref))
    )
    near = sorted({r.profile_id for r in rows})
    if near:
        return (
            f"no connection {ref!r}; did you mean {' or '.join(near)}? (name a connection as provider:name)"
        )
    return f"no connection {ref!r}; name one as provider:name or by its id (`patchbay connection list` shows them)"
