"""Reading the ledger: an org's entries over a window (all, or a page newest first), its open
holds, and its balance recomputed from the entries.

`derive` is the proof that the account row (`ledger_accounts`) and the open holds
(`ledger_holds`) are only a cache: it adds up the entries alone, and tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.ledger_tables import CLOSING, ENTRIES, HOLDS, EntryKind, LedgerEntry
from billing.ledger_types import Balance, Entry


async def derive(session: AsyncSession, org_id: str) -> Balance:
    """Balance = Σ credits and adjustments − Σ settles; held = Σ holds with no closing entry,
    less what settles served from such a hold (a lease, `billing.ledger_lease`) drew from it."""
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
    lease = aliased(LedgerEntry)
    drawn = select(func.coalesce(func.sum(ENTRIES.c.amount), 0)).where(
        ENTRIES.c.org_id == org_id,
        ENTRIES.c.kind == EntryKind.SETTLE.value,
        ENTRIES.c.hold_id.is_(None),
        ENTRIES.c.details["lease"]
        .as_string()
        .in_(
            select(lease.id).where(
                lease.org_id == org_id,
                lease.kind == EntryKind.HOLD.value,
                ~exists().where(
                    and_(closing.hold_id == lease.id, closing.kind.in_([k.value for k in CLOSING]))
                ),
            )
        ),
    )
    held -= await session.scalar(drawn) or 0
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


async def page_entries(
    session: AsyncSession,
    org_id: str,
    *,
    since: datetime,
    until: datetime,
    kinds: Sequence[EntryKind] = (),
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> list[Entry]:
    """A page of the org's entries in [since, until), newest first; `kinds` empty: every kind.
    `before` is the (created_at, id) of the last entry of the previous page (keyset paging, so
    entries written meanwhile never shift a page)."""
    query = select(ENTRIES).where(
        ENTRIES.c.org_id == org_id, ENTRIES.c.created_at >= since, ENTRIES.c.created_at < until
    )
    if kinds:
        query = query.where(ENTRIES.c.kind.in_([k.value for k in kinds]))
    if before is not None:
        at, entry_id = before
        query = query.where(
            or_(ENTRIES.c.created_at < at, and_(ENTRIES.c.created_at == at, ENTRIES.c.id < entry_id))
        )
    query = query.order_by(ENTRIES.c.created_at.desc(), ENTRIES.c.id.desc()).limit(limit)
    return [Entry.from_row(row) for row in (await session.execute(query)).all()]


@dataclass(frozen=True, slots=True)
class OpenHold:
    """A hold not yet settled or released: what it reserves and until when."""

    hold_id: str
    amount: int
    created_at: datetime
    expires_at: datetime
    details: dict[str, object]


async def open_holds(session: AsyncSession, org_id: str, *, limit: int) -> list[OpenHold]:
    """The org's open holds, oldest first (a hold open long past its TTL is a crash's leftover)."""
    query = (
        select(HOLDS.c.hold_id, HOLDS.c.amount, HOLDS.c.expires_at, ENTRIES.c.created_at, ENTRIES.c.details)
        .join(ENTRIES, ENTRIES.c.id == HOLDS.c.hold_id)
        .where(HOLDS.c.org_id == org_id)
        .order_by(ENTRIES.c.created_at, HOLDS.c.hold_id)
        .limit(limit)
    )
    return [
        OpenHold(row.hold_id, int(row.amount), row.created_at, row.expires_at, dict(row.details or {}))
        for row in (await session.execute(query)).all()
    ]
