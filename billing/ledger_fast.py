"""The request path's hold and settle in the fewest statements: tried first, and given up on
(`SlowPath`, the transaction rolled back) whenever anything is not the common case.

A hold is three statements: a conditional UPDATE of the org's account that is the lock, the
check that available covers the amount and the move of `held`, all at once (`... WHERE balance -
held >= amount RETURNING`); the entry's INSERT, which is also the idempotency check and the legacy
request-id check (`INSERT ... SELECT ... WHERE NOT EXISTS (legacy key) ON CONFLICT DO NOTHING
RETURNING`); the open hold's row. A settle whose caller knows the amount held is four: the
account's conditional UPDATE (lock, full charge covered, move), the hold's DELETE (which must
return that amount), the entry's INSERT (as above), and one upsert of both spend totals.

Everything stays under the same lock as `billing.ledger_store` describes (the account row is the
first statement, a write), and is decided from rows written or read under it. Any miss (no account
row, not enough available, a replayed key, an imported request id, a hold already closed or not
holding that amount, a charge that needs capping) raises `SlowPath`; `billing.ledger.Ledger` rolls
back and runs the general path, which gives the exact answer (a replay, a 402, a capped charge).
A miss writes nothing, so the general path decides from the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing import ledger_store as store
from billing.ledger_tables import ACCOUNTS, ENTRIES, EntryKind
from billing.ledger_types import Entry, legacy_key
from billing.spend import month_of
from billing.spend_store import add_spent


class SlowPath(Exception):
    """Not the common case: roll back and take the general path."""


def _dialect(session: AsyncSession) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


async def _insert_new(session: AsyncSession, entry: Entry, *, unless_key: str | None) -> None:
    """INSERT the entry unless its key (or `unless_key`) is the org's already, or it would be a
    second closing entry of its hold; raise `SlowPath` when it did not."""
    values: dict[str, Any] = {
        "id": entry.id,
        "org_id": entry.org_id,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "idempotency_key": entry.idempotency_key,
        "hold_id": entry.hold_id,
        "details": entry.details,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
    }
    insert = _dialect(session).insert(ENTRIES)
    if unless_key is None:
        statement = insert.values(**values)
    else:
        taken = exists().where(ENTRIES.c.org_id == entry.org_id, ENTRIES.c.idempotency_key == unless_key)
        row = select(*(literal(v, ENTRIES.c[k].type).label(k) for k, v in values.items())).where(~taken)
        statement = insert.from_select(list(values), row)
    result = await session.execute(statement.on_conflict_do_nothing().returning(ENTRIES.c.id))
    if result.first() is None:
        raise SlowPath


async def hold(
    session: AsyncSession,
    now: datetime,
    *,
    org_id: str,
    amount: int,
    key: str,
    hold_id: str,
    details: Mapping[str, Any],
    ttl: timedelta,
    request_id: str | None,
) -> Entry:
    """`Ledger.hold`'s new, covered hold; `SlowPath` for anything else."""
    expires_at = now + ttl
    moved = await session.execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.org_id == org_id, ACCOUNTS.c.balance - ACCOUNTS.c.held >= amount)
        .values(held=ACCOUNTS.c.held + amount, updated_at=now)
        .returning(ACCOUNTS.c.held)
    )
    if moved.first() is None:
        raise SlowPath
    entry = Entry(hold_id, org_id, EntryKind.HOLD, amount, key, None, dict(details), now, expires_at)
    await _insert_new(session, entry, unless_key=legacy_key(request_id) if request_id else None)
    await store.open_hold(session, hold_id, org_id, amount, expires_at)
    return entry


async def settle(
    session: AsyncSession,
    now: datetime,
    *,
    org_id: str,
    hold_id: str,
    held: int,
    amount: int,
    key: str,
    entry_id: str,
    details: Mapping[str, Any],
    api_key_id: str | None,
) -> Entry:
    """`Ledger.settle` of an open hold of `held`, charged `amount` in full; `SlowPath` otherwise.
    `details` are the entry's (as `billing.ledger_rules.charge_details` makes them)."""
    try:
        moved = await session.execute(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.org_id == org_id, ACCOUNTS.c.balance - ACCOUNTS.c.held + held >= amount)
            .values(balance=ACCOUNTS.c.balance - amount, held=ACCOUNTS.c.held - held, updated_at=now)
            .returning(ACCOUNTS.c.held)
        )
    except IntegrityError as exc:  # `held` was more than the account holds: not this hold's amount
        raise SlowPath from exc
    if moved.first() is None or await store.take_hold(session, hold_id, org_id) != held:
        raise SlowPath
    entry = Entry(entry_id, org_id, EntryKind.SETTLE, amount, key, hold_id, dict(details), now, None)
    await _insert_new(session, entry, unless_key=None)
    if amount > 0:
        await add_spent(session, org_id, api_key_id, month_of(now), amount)
    return entry
