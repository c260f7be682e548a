"""Reads and writes of spend caps and monthly spend totals (`billing.spend_tables`).

`add_spent` runs inside the ledger's settle transaction, under the org's lock; the rest are
called by the admin surfaces and by `billing.spend_caps` when it loads or refreshes an org.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.spend_tables import CAPS, ORG_SCOPE, TOTALS


@dataclass
class OrgSpend:
    """An org's caps and this month's totals, as read from the database (micro-USD)."""

    month: str
    budget: int | None = None
    key_limits: dict[str, int] = field(default_factory=dict)
    spent: int = 0
    key_spent: dict[str, int] = field(default_factory=dict)


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def add_spent(
    session: AsyncSession, org_id: str, api_key_id: str | None, month: str, amount: int
) -> None:
    """Add `amount` (> 0) to the org's total for `month` and, given a key, to the key's: one
    statement (a two-row upsert, the org's row first, so concurrent settles lock in one order)."""
    scopes = (ORG_SCOPE, api_key_id) if api_key_id else (ORG_SCOPE,)
    rows = [{"org_id": org_id, "api_key_id": scope, "month": month, "spent": amount} for scope in scopes]
    statement = _insert(session)(TOTALS).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[TOTALS.c.org_id, TOTALS.c.api_key_id, TOTALS.c.month],
            set_={"spent": TOTALS.c.spent + statement.excluded.spent},
        )
    )


async def set_cap(
    session: AsyncSession, org_id: str, api_key_id: str | None, limit: int | None, now: datetime
) -> None:
    """Set (or with None remove) the org's monthly budget, or a key's spend limit."""
    scope = api_key_id or ORG_SCOPE
    if limit is None:
        await session.execute(delete(CAPS).where(CAPS.c.org_id == org_id, CAPS.c.api_key_id == scope))
        return
    statement = _insert(session)(CAPS).values(
        org_id=org_id, api_key_id=scope, limit_micro_usd=limit, updated_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CAPS.c.org_id, CAPS.c.api_key_id],
            set_={"limit_micro_usd": limit, "updated_at": now},
        )
    )


async def load(session: AsyncSession, org_ids: Collection[str], month: str) -> dict[str, OrgSpend]:
    """Every org's caps and `month`'s totals: two queries, whatever the number of orgs."""
    found = {org_id: OrgSpend(month=month) for org_id in org_ids}
    if not found:
        return found
    caps = await session.execute(
        select(CAPS.c.org_id, CAPS.c.api_key_id, CAPS.c.limit_micro_usd).where(CAPS.c.org_id.in_(found))
    )
    for org_id, scope, limit in caps:
        if scope == ORG_SCOPE:
            found[org_id].budget = int(limit)
        else:
            found[org_id].key_limits[scope] = int(limit)
    totals = await session.execute(
        select(TOTALS.c.org_id, TOTALS.c.api_key_id, TOTALS.c.spent).where(
            TOTALS.c.org_id.in_(found), TOTALS.c.month == month
        )
    )
    for org_id, scope, spent in totals:
        if scope == ORG_SCOPE:
            found[org_id].spent = int(spent)
        else:
            found[org_id].key_spent[scope] = int(spent)
    return found


async def get_cap(session: AsyncSession, org_id: str, api_key_id: str | None = None) -> int | None:
    """The org's monthly budget (or, given a key, the key's spend limit); None: no cap."""
    scope = api_key_id or ORG_SCOPE
    limit = await session.scalar(
        select(CAPS.c.limit_micro_usd).where(CAPS.c.org_id == org_id, CAPS.c.api_key_id == scope)
    )
    return int(limit) if limit is not None else None


async def spent_in(session: AsyncSession, org_id: str, month: str) -> tuple[int, dict[str, int]]:
    """What the org was charged in `month` (`YYYY-MM`, UTC), in all and per API key."""
    rows = await session.execute(
        select(TOTALS.c.api_key_id, TOTALS.c.spent).where(TOTALS.c.org_id == org_id, TOTALS.c.month == month)
    )
    total, per_key = 0, {}
    for scope, spent in rows:
        if scope == ORG_SCOPE:
            total = int(spent)
        else:
            per_key[scope] = int(spent)
    return total, per_key


async def key_limits(session: AsyncSession, org_id: str) -> dict[str, int]:
    """The spend limits of the org's API keys that have one (key id -> micro-USD)."""
    rows = await session.execute(
        select(CAPS.c.api_key_id, CAPS.c.limit_micro_usd).where(
            CAPS.c.org_id == org_id, CAPS.c.api_key_id != ORG_SCOPE
        )
    )
    return {scope: int(limit) for scope, limit in rows}
