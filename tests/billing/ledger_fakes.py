"""Shared by the ledger tests: a settable clock, two ledgers over separate engines, and the
consistency check every test ends with (the account row equals the sum of the entries)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from billing.ledger import Ledger
from billing.ledger_query import derive
from billing.ledger_tables import ENTRIES
from billing.ledger_types import Balance
from server.db import Database

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """`clock()` is `now`; tests move it by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


async def assert_consistent(db: Database, ledger: Ledger, org_id: str) -> Balance:
    """The account row and open holds agree with the entries alone, and nothing is negative."""
    cached = await ledger.balance(org_id)
    async with db.sessions() as session:
        derived = await derive(session, org_id)
    assert (cached.balance, cached.held, cached.open_holds) == (
        derived.balance,
        derived.held,
        derived.open_holds,
    )
    assert cached.held >= 0 and cached.available >= 0
    return cached


async def entry_count(db: Database, org_id: str | None = None, kind: str | None = None) -> int:
    query = select(func.count()).select_from(ENTRIES)
    if org_id is not None:
        query = query.where(ENTRIES.c.org_id == org_id)
    if kind is not None:
        query = query.where(ENTRIES.c.kind == kind)
    async with db.sessions() as session:
        return int(await session.scalar(query) or 0)


@asynccontextmanager
async def second_engine(db: Database) -> AsyncIterator[Database]:
    """Another engine (its own pool and, on SQLite, its own connections) on the same database:
    what a second server process would be, without leaving the test's event loop."""
    other = Database(db.url)
    try:
        yield other
    finally:
        await other.dispose()
