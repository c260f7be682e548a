"""A per-org change counter, so every process notices routing changes made anywhere.

Each write to an org's connections, agents or routing matrix bumps `config_versions.version`
for that org inside the same transaction (`bump`). Running servers poll the counters of the
orgs they hold in memory every couple of seconds (`read_versions`) and rebuild a snapshot whose
version moved: a change made by the CLI in another process, or by another replica, reaches
them without a database read per request and without Redis.

`bump` also records a version of the org's configuration in `config_history` when what is
versioned changed (`routing.config_history`); the platform scope's versions hold the feature
flags (its other changes, such as platform connections, record nothing).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Integer, String, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, utcnow
from routing import config_history

_READ_BATCH = 500


class ConfigVersion(Base):
    """One row per org that has ever changed; `version` only grows."""

    __tablename__ = "config_versions"

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


async def bump(session: AsyncSession, org_id: str, *, kind: str | None = None) -> int:
    """Count one configuration change for `org_id`, in the caller's transaction, and record
    a version of its configuration when it changed (`kind` names the change when the caller
    knows it: `rollback`, `flags`, ...; a given kind is recorded even with nothing changed).
    Returns the new version number."""
    number = await _increment(session, org_id)
    await config_history.record(session, org_id, number, kind)
    return number


async def _increment(session: AsyncSession, org_id: str) -> int:
    now = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = make(ConfigVersion).values(org_id=org_id, version=1, changed_at=now)
        upsert = stmt.on_conflict_do_update(
            index_elements=[ConfigVersion.org_id],
            set_={"version": ConfigVersion.version + 1, "changed_at": now},
        ).returning(ConfigVersion.version)
        return int((await session.execute(upsert)).scalar_one())
    result = await session.execute(
        update(ConfigVersion)
        .where(ConfigVersion.org_id == org_id)
        .values(version=ConfigVersion.version + 1, changed_at=now)
    )
    if not getattr(result, "rowcount", 0):
        session.add(ConfigVersion(org_id=org_id, version=1, changed_at=now))
        return 1
    return int(await session.scalar(select(ConfigVersion.version).where(ConfigVersion.org_id == org_id)) or 0)


_VERSIONS = select(ConfigVersion.org_id, ConfigVersion.version).where(
    ConfigVersion.org_id.in_(bindparam("ids", expanding=True))
)
"""Built once: an `in_(list)` built on every poll left its bind parameters in reference cycles."""


async def read_versions(session: AsyncSession, org_ids: Collection[str]) -> dict[str, int]:
    """Current versions of the given orgs; an org that never changed is absent (version 0)."""
    ids = list(org_ids)
    out: dict[str, int] = {}
    for start in range(0, len(ids), _READ_BATCH):
        rows = await session.execute(_VERSIONS, {"ids": ids[start : start + _READ_BATCH]})
        out.update({str(row[0]): int(row[1]) for row in rows})
    return out
