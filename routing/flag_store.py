"""Feature flags' stored rollout (`feature_flags`) and the writes that change it.

One row per flag that has ever been set: its percentage, canary org list and kill switch
(routing/flags.py evaluates them). Every write bumps the platform's config version in the same
transaction: a flag is a change of every org, so each registry drops its snapshots (at once on
the replica that made it and, through the Redis notice the caller sends with
`Services.config_changed(PLATFORM_SCOPE)`, on the others; within a poll interval without Redis)
and the next request is evaluated with the new state, from memory. Each write leaves an audit
event (`flag.update`, no org: a flag is the server's) naming who changed what, and, through
the bump, a version of the platform scope's configuration (`config_history`, section `flags`)
that `patchbay config rollback --platform` restores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from foundation.audit import AuditEvent, current_acting
from foundation.db import Base, UTCDateTime, utcnow
from routing import config_history
from routing.config_versions import bump
from routing.flags import FLAGS, FlagState, flag_def
from routing.platform import PLATFORM_SCOPE


class FeatureFlag(Base):
    __tablename__ = "feature_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    canary: Mapped[list[str]] = mapped_column(JSON, default=list)
    killed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="")


class FlagValueError(ValueError):
    """A percentage outside 0-100."""


def _state(row: FeatureFlag) -> FlagState:
    return FlagState(
        name=row.name, percent=row.percent, canary=frozenset(row.canary or ()), killed=bool(row.killed)
    )


async def load_states(session: AsyncSession) -> list[FlagState]:
    """Every stored flag: a handful of rows, read when a snapshot is (re)built, never per request."""
    return [_state(r) for r in await session.scalars(select(FeatureFlag).order_by(FeatureFlag.name))]


async def _row(session: AsyncSession, name: str) -> FeatureFlag:
    flag_def(name)  # unknown names are refused before anything is written
    if await config_history.latest(session, PLATFORM_SCOPE) is None:
        # The first flag change: record the state before it, so it can be rolled back to.
        await bump(session, PLATFORM_SCOPE, kind="initial")
    row = await session.get(FeatureFlag, name)
    if row is None:
        row = FeatureFlag(name=name, percent=None, canary=[], killed=False)
        session.add(row)
    return row


async def _written(
    session: AsyncSession, row: FeatureFlag, actor: str, details: dict[str, object]
) -> FlagState:
    row.updated_at = utcnow()
    row.updated_by = actor
    session.add(
        AuditEvent(
            org_id=None,
            actor=actor,
            action="flag.update",
            target_type="flag",
            target_id=row.name,
            details=details,
        )
    )
    await bump(session, PLATFORM_SCOPE)
    await session.flush()
    return _state(row)


async def set_percent(session: AsyncSession, name: str, percent: float | None, *, actor: str) -> FlagState:
    """Roll `name` out to `percent` of orgs (None: back to its default outside the canary list)."""
    if percent is not None and not 0 <= percent <= 100:
        raise FlagValueError(f"percent must be between 0 and 100, not {percent}")
    row = await _row(session, name)
    row.percent = percent
    return await _written(session, row, actor, {"percent": percent})


async def set_canary(
    session: AsyncSession, name: str, *, add: list[str], remove: list[str], actor: str
) -> FlagState:
    """Add orgs to (and remove orgs from) the flag's canary list: those orgs have it on."""
    row = await _row(session, name)
    orgs = [o for o in (row.canary or []) if o not in remove]
    orgs += [o for o in add if o not in orgs]
    row.canary = orgs
    return await _written(session, row, actor, {"canary_added": add, "canary_removed": remove})


async def set_killed(session: AsyncSession, name: str, killed: bool, *, actor: str) -> FlagState:
    """The global kill switch: on, the flag is off for every org (the old path); off, the rollout resumes."""
    row = await _row(session, name)
    row.killed = killed
    return await _written(session, row, actor, {"killed": killed})


async def _capture(session: AsyncSession, _scope: str) -> dict[str, Any]:
    """The stored rollouts as a version holds them (a flag with no row is at its default)."""
    return {
        s.name: {"percent": s.percent, "canary": sorted(s.canary), "killed": s.killed}
        for s in await load_states(session)
    }


async def _restore(
    session: AsyncSession, _scope: str, data: Any, report: config_history.RestoreReport
) -> None:
    who = current_acting()
    for name in sorted(set(FLAGS) | set(data)):
        if name not in FLAGS:
            report.not_restored.append(f"flag {name}: no longer a known flag")
            continue
        row = await session.get(FeatureFlag, name)
        wanted = data.get(name)
        if wanted is None:
            if row is not None:
                await session.delete(row)
            report.restored.append(f"flag {name}: default")
            continue
        if row is None:
            row = FeatureFlag(name=name)
            session.add(row)
        row.percent = wanted.get("percent")
        row.canary = list(wanted.get("canary") or [])
        row.killed = bool(wanted.get("killed"))
        row.updated_at = utcnow()
        row.updated_by = who.actor if who is not None else "system"
        report.restored.append(f"flag {name}")


config_history.register_section("flags", _capture, _restore, scope="platform")
