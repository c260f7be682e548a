"""The ledger's statements, and the one lock every ledger write takes first.

Every write runs in one transaction whose FIRST statement is an UPDATE of the org's row in
`ledger_accounts` (`lock_account`), and everything it decides (is the key new, is the hold
open, what is available) is read after that, under the lock:

- PostgreSQL: the UPDATE takes the row lock, so writers of one org queue on it (other orgs are
  not affected); under READ COMMITTED each later statement sees every transaction committed
  before the lock was granted, so two writers never decide from the same balance.
- SQLite: a write as the first statement takes the database's single write lock at once (what
  `BEGIN IMMEDIATE` does), so the transaction never reads a snapshot it later has to upgrade;
  a second writer waits on `busy_timeout` (`foundation.sqlite_files` sets it) instead of failing, and
  `Ledger` also queues its own writers on an `asyncio.Lock` so that one process does not spend
  its connection pool waiting on itself.

`billing.ledger_fast` keeps the same rule with a conditional UPDATE of that row as its first
statement (the lock, the check of available and the move at once).

Behind the lock, the database still refuses what must never happen: a second entry with an org's
idempotency key, a second closing entry for a hold, and an account whose holds exceed its
balance (`ledger_tables`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.ledger_tables import ACCOUNTS, CLOSING, ENTRIES, HOLDS, EntryKind
from billing.ledger_types import Balance


@dataclass(frozen=True, slots=True)
class Account:
    """The org's account as read under the lock; `exists` is False before its first credit."""

    org_id: str
    balance: int
    held: int
    exists: bool

    @property
    def available(self) -> int:
        return self.balance - self.held


async def lock_account(session: AsyncSession, org_id: str, now: datetime, *, create: bool) -> Account:
    """Lock the org's account row (creating it first when `create`) and read it."""
    statement = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.org_id == org_id)
        .values(updated_at=now)
        .returning(ACCOUNTS.c.balance, ACCOUNTS.c.held)
    )
    row = (await session.execute(statement)).first()
    if row is None and create:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        values = {"org_id": org_id, "balance": 0, "held": 0, "updated_at": now}
        await session.execute(dialect.insert(ACCOUNTS).values(**values).on_conflict_do_nothing())
        row = (await session.execute(statement)).first()
    if row is None:
        return Account(org_id, 0, 0, exists=False)
    return Account(org_id, row.balance, row.held, exists=True)


async def move(session: AsyncSession, org_id: str, *, balance: int = 0, held: int = 0) -> None:
    """Add to the locked account's balance and held (either may be negative)."""
    await session.execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.org_id == org_id)
        .values(balance=ACCOUNTS.c.balance + balance, held=ACCOUNTS.c.held + held)
    )


async def entry_by_key(session: AsyncSession, org_id: str, key: str) -> Row[Any] | None:
    query = select(ENTRIES).where(ENTRIES.c.org_id == org_id, ENTRIES.c.idempotency_key == key)
    return (await session.execute(query)).first()


async def entries_by_keys(session: AsyncSession, org_id: str, keys: Iterable[str]) -> dict[str, Row[Any]]:
    """The org's entries with any of `keys` (one indexed statement), by key."""
    query = select(ENTRIES).where(ENTRIES.c.org_id == org_id, ENTRIES.c.idempotency_key.in_(list(keys)))
    return {row.idempotency_key: row for row in (await session.execute(query)).all()}


async def entries_by_prefixes(
    session: AsyncSession, org_id: str, prefixes: Iterable[str], kinds: Iterable[EntryKind]
) -> list[Row[Any]]:
    """The org's entries of `kinds` whose key starts with any of `prefixes`. Compares fixed-length
    prefixes (`substr(key, 1, n) IN (...)`), not `LIKE`: exact under any collation, no escaping.
    It reads every entry of the org once (no index serves a prefix under every collation)."""
    by_length: dict[int, list[str]] = {}
    for prefix in prefixes:
        by_length.setdefault(len(prefix), []).append(prefix)
    if not by_length:
        return []
    key = ENTRIES.c.idempotency_key
    matches = [func.substr(key, 1, n).in_(group) for n, group in by_length.items()]
    query = select(ENTRIES).where(
        ENTRIES.c.org_id == org_id, ENTRIES.c.kind.in_([k.value for k in kinds]), or_(*matches)
    )
    return list((await session.execute(query)).all())


async def open_among(session: AsyncSession, hold_ids: Iterable[str]) -> set[str]:
    """Which of `hold_ids` are still open."""
    ids = list(hold_ids)
    if not ids:
        return set()
    rows = await session.execute(select(HOLDS.c.hold_id).where(HOLDS.c.hold_id.in_(ids)))
    return {str(h) for h in rows.scalars()}


async def entry_by_id(session: AsyncSession, entry_id: str) -> Row[Any] | None:
    return (await session.execute(select(ENTRIES).where(ENTRIES.c.id == entry_id))).first()


async def closing_entry(session: AsyncSession, hold_id: str) -> Row[Any] | None:
    """The settle or release entry that closed a hold, if one did."""
    query = select(ENTRIES).where(
        ENTRIES.c.hold_id == hold_id, ENTRIES.c.kind.in_([k.value for k in CLOSING])
    )
    return (await session.execute(query)).first()


async def insert_entry(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(ENTRIES).values(**values))


async def open_hold(
    session: AsyncSession, hold_id: str, org_id: str, amount: int, expires_at: datetime
) -> None:
    await session.execute(
        insert(HOLDS).values(hold_id=hold_id, org_id=org_id, amount=amount, expires_at=expires_at)
    )


async def take_hold(
    session: AsyncSession, hold_id: str, org_id: str, *, expired_by: datetime | None = None
) -> int | None:
    """Remove the open hold (only if expired by `expired_by`, when given) and return its amount;
    None when it is not open (already closed, another org's, or not yet expired)."""
    statement = delete(HOLDS).where(HOLDS.c.hold_id == hold_id, HOLDS.c.org_id == org_id)
    if expired_by is not None:
        statement = statement.where(HOLDS.c.expires_at <= expired_by)
    row = (await session.execute(statement.returning(HOLDS.c.amount))).first()
    return None if row is None else int(row.amount)


async def refunded_for(session: AsyncSession, org_id: str, hold_id: str) -> int:
    """micro-USD already refunded against a settled hold."""
    query = select(ENTRIES.c.amount).where(
        ENTRIES.c.org_id == org_id, ENTRIES.c.hold_id == hold_id, ENTRIES.c.kind == EntryKind.REFUND.value
    )
    return sum(int(a) for a in (await session.execute(query)).scalars())


async def balance(session: AsyncSession, org_id: str) -> Balance:
    """The org's account row and how many holds it has open (no scan of the entries)."""
    row = (await session.execute(select(ACCOUNTS).where(ACCOUNTS.c.org_id == org_id))).first()
    if row is None:
        return Balance()
    count = await session.scalar(select(func.count()).select_from(HOLDS).where(HOLDS.c.org_id == org_id))
    return Balance(int(row.balance), int(row.held), int(count or 0))


async def due_holds(session: AsyncSession, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(hold id, org id) of open holds expired by `now`, the oldest first."""
    query = select(HOLDS.c.hold_id, HOLDS.c.org_id).where(HOLDS.c.expires_at <= now)
    rows = await session.execute(query.order_by(HOLDS.c.expires_at, HOLDS.c.hold_id).limit(limit))
    return [(str(h), str(o)) for h, o in rows.all()]
