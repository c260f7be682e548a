"""Reading the ledger: an org's entries over a window, and its balance recomputed from them.

`derive` is the proof that the account row (`ledger_accounts`) and the open holds
(`ledger_holds`) are only a cache: it adds up the entries alone, and tests compare the two.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.ledger_tables import CLOSING, ENTRIES, EntryKind, LedgerEntry
from billing.ledger_types import Balance, Entry


async def derive(session: AsyncSession, org_id: str) -> Balance:
    """Balance = Σ credits and adjustments − Σ settles; held = Σ holds with no closing entry."""
    effect = case(
        (ENTRIES.c.kind == EntryKind.SETTLE.value, -ENTRIES.c.amount),
        (ENTRIES.c.kind.in_([EntryKind.HOLD.value, EntryKind.RELEASE.value]), 0),
        else_=ENTRIES.c.amount,
    )
    balance = await session.scalar(
        select(func.coalesce(func.sum(effect), 0)).where(ENTRIES.c.org_id == org_id)
    )
    closing = aliased(LedgerEntry)
    is_closed = exists().where(
        and_(closing.hold_id == LedgerEntry.id, closing.kind.in_([k.value for k in CLOSING]))
    )
    open_holds = select(func.coalesce(func.sum(LedgerEntry.amount), 0), func.count()).where(
        LedgerEntry.org_id == org_id, LedgerEntry.kind == EntryKind.HOLD.value, ~is_closed
    )
    held, count = (await session.execute(open_holds)).one()
    return Balance(int(balance or 0), int(held), int(count))


async def list_entries(
    session: AsyncSession, org_id: str, *, since: datetime | None = None, limit: int | None = None
) -> list[Entry]:
    """The org's entries since a time, oldest first (the order they were written in)."""
    query = select(ENTRIES).where(ENTRIES.c.org_id == org_id)
    if since is not None:
        query = query.where(ENTRIES.c.created_at >= since)
    query = query.order_by(ENTRIES.c.created_at, ENTRIES.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [Entry.from_row(row) for row in (await session.execute(query)).all()]
