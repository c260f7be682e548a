"""Rollback: make an org's configuration what a recorded version says, without secrets.

`rollback(session, org_id, to_version)` restores each section of the version's snapshot
(`routing.config_history`) and records the result as a new version of kind `rollback`, so a
rollback is itself in the history and can be rolled back. It never brings a key back:

- a connection that was deleted since stays deleted, and one revoked since stays revoked
  (a revoked key is gone for good); both are reported as not restored, with the reason;
- a connection's order and its active/disabled status are restored otherwise;
- the org's routing matrix, default model, allowlist and explicit profile order are restored;
- agents in the version get their chains, default model and voice settings back; an agent
  deleted since is created again under its id when its name is free; an agent created after
  the version is kept (API keys may be bound to it) and reported, as is a connection added
  after it (removing it would throw its key away).

A registered section (`config_history.register_section`) with a restore function is restored
too; one without is reported as not restored. The platform scope (`PLATFORM_SCOPE`) is rolled
back the same way: its versions hold the feature flags, restored by routing/flag_store.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent, current_acting
from foundation.errors import NotFoundError
from routing import config_history
from routing.config_history import RestoreReport
from routing.config_versions import bump
from routing.model import ConnectionStatus
from routing.platform import PLATFORM_SCOPE
from routing.tables import Agent, Connection, OrgAISettings

_REVOKED = ConnectionStatus.REVOKED.value


@dataclass(frozen=True)
class RollbackResult:
    org_id: str
    to_version: int
    new_version: int
    restored: list[str]
    not_restored: list[str]


async def rollback(session: AsyncSession, org_id: str, to_version: int) -> RollbackResult:
    """Restore version `to_version` of the org's configuration, in the caller's transaction."""
    target = await config_history.version(session, org_id, to_version)
    if target is None:
        raise NotFoundError(
            f"org has no configuration version {to_version}: list them with `patchbay config history`",
            param="to",
        )
    report = RestoreReport()
    snapshot: dict[str, Any] = dict(target.snapshot)
    restorers = {"routing": _restore_routing, "agents": _restore_agents, "connections": _restore_connections}
    for name, section in sorted(config_history.sections(org_id).items()):
        if name not in snapshot:
            continue
        restore = restorers.get(name) or section.restore
        if restore is None:
            report.not_restored.append(f"{name}: this kind of configuration cannot be rolled back")
            continue
        await restore(session, org_id, snapshot[name], report)
    who = current_acting()
    session.add(
        AuditEvent(
            org_id=None if org_id == PLATFORM_SCOPE else org_id,
            actor=who.actor if who is not None else "system",
            action="config.rollback",
            target_type="org",
            target_id=org_id,
            details={"to_version": to_version, "not_restored": len(report.not_restored)},
        )
    )
    await session.flush()
    number = await bump(session, org_id, kind="rollback")
    return RollbackResult(org_id, to_version, number, report.restored, report.not_restored)


async def _restore_routing(session: AsyncSession, org_id: str, data: Any, report: RestoreReport) -> None:
    row = await session.get(OrgAISettings, org_id)
    if row is None:
        row = OrgAISettings(org_id=org_id, routing={})
        session.add(row)
    row.routing = {k: list(v) for k, v in (data.get("chains") or {}).items()}
    row.default_model = data.get("default_model")
    row.allowed_models = data.get("allowed_models")
    row.profile_order_explicit = data.get("profile_order_explicit")
    report.restored.append("routing matrix, default model and allowlist")


async def _restore_agents(session: AsyncSession, org_id: str, data: Any, report: RestoreReport) -> None:
    rows = {r.id: r for r in await session.scalars(select(Agent).where(Agent.org_id == org_id))}
    wanted = {str(a["id"]) for a in data}
    for item in data:
        row = rows.get(item["id"])
        if row is None:
            taken = any(r.name == item["name"] for r in rows.values())
            if taken:
                report.not_restored.append(
                    f"agent {item['name']}: deleted since, and its name is taken by another agent"
                )
                continue
            row = Agent(id=item["id"], org_id=org_id, name=item["name"])
            session.add(row)
            report.restored.append(f"agent {item['name']}: created again")
        else:
            report.restored.append(f"agent {item['name']}")
        row.default_model = item.get("default_model")
        row.chains = {k: list(v) for k, v in (item.get("chains") or {}).items()}
        row.settings = dict(item.get("settings") or {})
    for row in rows.values():
        if row.id not in wanted:
            report.not_restored.append(
                f"agent {row.name}: created after this version; kept (delete it with `patchbay agent delete`)"
            )


async def _restore_connections(session: AsyncSession, org_id: str, data: Any, report: RestoreReport) -> None:
    rows = {r.id: r for r in await session.scalars(select(Connection).where(Connection.org_id == org_id))}
    for item in data:
        profile = item.get("profile", item["id"])
        row = rows.get(item["id"])
        if row is None:
            report.not_restored.append(
                f"connection {profile}: deleted since; a rollback never restores a key"
            )
            continue
        row.position = int(item["position"])
        if row.status == _REVOKED and item["status"] != _REVOKED:
            report.not_restored.append(
                f"connection {profile}: revoked since; it stays revoked (add a new key to use it again)"
            )
            continue
        if item["status"] != _REVOKED and row.status != item["status"]:
            row.status = item["status"]
        report.restored.append(f"connection {profile}: order and status")
    known = {str(item["id"]) for item in data}
    for row in rows.values():
        if row.id not in known:
            report.not_restored.append(
                f"connection {row.profile_id}: added after this version; kept (disable or delete it if unwanted)"
            )
