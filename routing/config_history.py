"""Configuration history: a version of an org's non-secret configuration per change.

`config_versions.bump`, which every write to an org's connections, agents or routing matrix
already calls inside its transaction, calls `record` here: it captures a snapshot of the org's
configuration (its sections, below) and, when the snapshot differs from the org's last
recorded one, appends a `config_history` row with the version number, who acted (the audit
`acting` of the request or command), what changed (one line per difference) and the snapshot.
A change that touches nothing versioned (a health probe, a tier change) records nothing.

A snapshot never holds a secret: connections appear by id, profile id, status and order only;
never a vault record, fingerprint, environment reference or base URL. Rollback is
`routing.config_rollback`.

Sections are a registry (`register_section`): a later kind of configuration registers a
capture and a restore function and is then versioned and rolled back with the rest;
`bump(..., kind=...)` records a version of a given kind. A section has a scope: `org` sections
make up an org's versions; `platform` sections (the feature flags, routing/flag_store.py) make
up the versions of the platform scope (`routing.platform.PLATFORM_SCOPE`), whose changes are
every org's; routing/flag_history.py shows an org the platform versions that changed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from foundation.audit import current_acting
from foundation.db import Base, UTCDateTime, new_id, utcnow
from routing.platform import PLATFORM_SCOPE
from routing.tables import Agent, Connection, OrgAISettings

Snapshot = dict[str, Any]


class ConfigHistory(Base):
    """One version of an org's configuration: who, when, what changed, and the snapshot."""

    __tablename__ = "config_history"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cfh"))
    org_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    """The org's `config_versions.version` after the change."""
    kind: Mapped[str] = mapped_column(String(64))
    """The sections that changed (`routing`, `agents`, `connections`, ...) or `rollback`."""
    actor: Mapped[str] = mapped_column(String(64))
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "version", name="uq_config_history_org_version"),
        Index("ix_config_history_org_created", "org_id", "created_at"),
    )


@dataclass
class RestoreReport:
    """What a rollback restored and what it could not (with the reason)."""

    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


Capture = Callable[[AsyncSession, str], Awaitable[Any]]
Restore = Callable[[AsyncSession, str, Any, RestoreReport], Awaitable[None]]


@dataclass(frozen=True)
class Section:
    name: str
    capture: Capture
    restore: Restore | None = None
    scope: str = "org"
    """`org`: part of each org's versions; `platform`: part of the platform scope's versions."""


_SECTIONS: dict[str, Section] = {}


def register_section(
    name: str, capture: Capture, restore: Restore | None = None, *, scope: str = "org"
) -> None:
    """Version one more kind of configuration (its capture must hold no secret)."""
    _SECTIONS[name] = Section(name, capture, restore, scope)


def scope_name(org_id: str) -> str:
    return "platform" if org_id == PLATFORM_SCOPE else "org"


def sections(org_id: str | None = None) -> dict[str, Section]:
    """The registered sections; with `org_id`, those that make up that scope's versions."""
    if org_id is None:
        return dict(_SECTIONS)
    scope = scope_name(org_id)
    return {n: s for n, s in _SECTIONS.items() if s.scope == scope}


async def _capture_routing(session: AsyncSession, org_id: str) -> dict[str, Any]:
    row = await session.get(OrgAISettings, org_id)
    if row is None:
        return {"default_model": None, "allowed_models": None, "chains": {}, "profile_order_explicit": None}
    return {
        "default_model": row.default_model,
        "allowed_models": list(row.allowed_models) if row.allowed_models is not None else None,
        "chains": {k: list(v) for k, v in sorted((row.routing or {}).items())},
        "profile_order_explicit": row.profile_order_explicit,
    }


async def _capture_agents(session: AsyncSession, org_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(select(Agent).where(Agent.org_id == org_id).order_by(Agent.name))
    return [
        {
            "id": r.id,
            "name": r.name,
            "default_model": r.default_model,
            "chains": {k: list(v) for k, v in sorted((r.chains or {}).items())},
            "settings": dict(r.settings or {}),
        }
        for r in rows
    ]


async def _capture_connections(session: AsyncSession, org_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(Connection)
        .where(Connection.org_id == org_id)
        .order_by(Connection.provider, Connection.position, Connection.name)
    )
    # Ids, status and order only: never the vault record, fingerprint or environment reference.
    return [{"id": r.id, "profile": r.profile_id, "status": r.status, "position": r.position} for r in rows]


register_section("routing", _capture_routing)
register_section("agents", _capture_agents)
register_section("connections", _capture_connections)


async def capture(session: AsyncSession, org_id: str) -> Snapshot:
    """The org's (or the platform scope's) versioned configuration now, pending changes included."""
    return {name: await s.capture(session, org_id) for name, s in sorted(sections(org_id).items())}


def describe_changes(before: Snapshot | None, after: Snapshot) -> list[str]:
    """One line per difference between two snapshots (pure)."""
    if before is None:
        return ["first recorded version"]
    lines: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    lines.append(f"{name}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
        elif isinstance(old, list) and isinstance(new, list):
            lines += _describe_items(name, old, new)
        else:
            lines.append(f"{name} changed")
    return lines


def _describe_items(name: str, old: list[Any], new: list[Any]) -> list[str]:
    def keyed(items: list[Any]) -> dict[str, Any]:
        return {str(i.get("id")) if isinstance(i, dict) else str(i): i for i in items}

    a, b = keyed(old), keyed(new)
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        label = _label(b.get(key) or a.get(key), key)
        if key not in a:
            out.append(f"{name}: {label} added")
        elif key not in b:
            out.append(f"{name}: {label} removed")
        elif a[key] != b[key]:
            fields = sorted(f for f in set(a[key]) | set(b[key]) if a[key].get(f) != b[key].get(f))
            out.append(
                f"{name}: {label} " + ", ".join(f"{f} {a[key].get(f)!r} -> {b[key].get(f)!r}" for f in fields)
            )
    return out


def _label(item: Any, key: str) -> str:
    if isinstance(item, dict):
        return str(item.get("profile") or item.get("name") or key)
    return key


def kind_of(before: Snapshot | None, after: Snapshot) -> str:
    if before is None:
        return "initial"
    changed = [n for n in sorted(set(before) | set(after)) if before.get(n) != after.get(n)]
    return ",".join(changed)[:64]


async def latest(session: AsyncSession, org_id: str) -> ConfigHistory | None:
    return await session.scalar(
        select(ConfigHistory)
        .where(ConfigHistory.org_id == org_id)
        .order_by(ConfigHistory.version.desc())
        .limit(1)
    )


async def record(session: AsyncSession, org_id: str, version: int, kind: str | None = None) -> bool:
    """Append a version when the org's configuration differs from its last recorded one.

    Called by `config_versions.bump` in the caller's transaction; `kind` names the change
    (`rollback`, `flags`, ...) when the caller knows it. True when a version was recorded.
    """
    snapshot = await capture(session, org_id)
    last = await latest(session, org_id)
    before = last.snapshot if last is not None else None
    if before == snapshot and kind is None:
        return False
    who = current_acting()
    session.add(
        ConfigHistory(
            org_id=org_id,
            version=version,
            kind=kind or kind_of(before, snapshot),
            actor=who.actor if who is not None else "system",
            changes=describe_changes(before, snapshot),
            snapshot=snapshot,
            created_at=utcnow(),
        )
    )
    await session.flush()
    return True


async def history(session: AsyncSession, org_id: str, *, limit: int = 50) -> list[ConfigHistory]:
    """The org's versions, newest first."""
    rows = await session.scalars(
        select(ConfigHistory)
        .where(ConfigHistory.org_id == org_id)
        .order_by(ConfigHistory.version.desc())
        .limit(limit)
    )
    return list(rows)


async def version(session: AsyncSession, org_id: str, number: int) -> ConfigHistory | None:
    return await session.scalar(
        select(ConfigHistory).where(ConfigHistory.org_id == org_id, ConfigHistory.version == number)
    )
