"""Settles served from a credit lease, written into the ledger in batches (`billing.lease`).

A lease is an ordinary hold (`Ledger.hold`, details `{"lease": true}`). A segment served from
it is recorded as a `settle` entry with no `hold_id` (the hold's one closing entry stays its
release) and `details.lease` naming the lease; writing it moves the charge out of the lease:
the balance and `held` go down by it, and so does the open lease's remaining amount in
`ledger_holds`. When the lease closes (released unused, or expired), its release gives back
what remains, so `held` is always the open holds' amounts less what was drawn from them
(`billing.ledger_query.derive` adds it up that way).

`settle_leased` writes one batch of one lease's settles in one transaction, under the org's
lock (`billing.ledger_store`): settles whose key is already in the ledger are replays and write
nothing (a journal replayed twice, or after a crash, changes nothing), as are settles of a
request id imported from the predecessor (that import charged it; logged). If the lease is no
longer open (the sweeper released it: the segment outlived its TTL) or cannot cover the batch,
each settle is charged against what is available instead, capped, with its shortfall recorded,
as `Ledger.charge` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing import ledger_rules as rules
from billing import ledger_store as store
from billing.ledger_tables import ENTRIES, HOLDS, EntryKind
from billing.ledger_types import LEGACY_PREFIX, Entry, legacy_key
from billing.spend import month_of
from billing.spend_store import add_spent
from foundation.bulk_insert import insert_rows
from foundation.db import new_id

log = logging.getLogger("patchbay.billing")
_INSERT_ENTRIES = insert(ENTRIES)
"""Kept, so `insert_rows` makes its plan once: a batch of leased settles goes to the driver as
its parameters, not through SQLAlchemy's per-row execution context."""


@dataclass(frozen=True, slots=True)
class LeasedSettle:
    """One segment's charge against a lease, as journaled: micro-USD `amount` charged (what its
    client was told), under `key`; `details` as `billing.ledger_rules.charge_details` makes them."""

    org_id: str
    lease_id: str
    key: str
    amount: int
    details: Mapping[str, Any]
    at: datetime
    api_key_id: str | None = None
    request_id: str | None = None

    def line(self) -> dict[str, Any]:
        return {
            "org": self.org_id,
            "lease": self.lease_id,
            "key": self.key,
            "amount": self.amount,
            "details": dict(self.details),
            "at": self.at.isoformat(),
            "api_key": self.api_key_id,
            "request": self.request_id,
        }

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> LeasedSettle:
        return cls(
            org_id=str(line["org"]),
            lease_id=str(line["lease"]),
            key=str(line["key"]),
            amount=int(line["amount"]),
            details=dict(line["details"]),
            at=datetime.fromisoformat(str(line["at"])),
            api_key_id=line.get("api_key"),
            request_id=line.get("request"),
        )


async def settle_leased(
    session: AsyncSession,
    account: store.Account,
    now: datetime,
    *,
    lease_id: str,
    settles: Sequence[LeasedSettle],
) -> list[Entry]:
    """Write the settles of `lease_id` not written yet (the org's account locked); returns the new entries."""
    org_id = account.org_id
    imported = {legacy_key(s.request_id): s.request_id for s in settles if s.request_id}
    found = await store.entries_by_keys(session, org_id, [*(s.key for s in settles), *imported])
    fresh: dict[str, LeasedSettle] = {}
    for s in settles:
        if s.key in found or s.key in fresh:
            continue
        if s.request_id and legacy_key(s.request_id) in found:
            log.warning("request id already charged by the legacy import; leased settle not written")
            continue
        fresh[s.key] = s
    if not fresh:
        return []
    total = sum(s.amount for s in fresh.values())
    remaining = await session.scalar(
        select(HOLDS.c.amount).where(HOLDS.c.hold_id == lease_id, HOLDS.c.org_id == org_id)
    )
    if remaining is None or int(remaining) < total:
        return await _charge_each(session, account, list(fresh.values()))
    entries = [
        Entry(new_id("led"), org_id, EntryKind.SETTLE, s.amount, s.key, None, dict(s.details), s.at)
        for s in fresh.values()
    ]
    await insert_rows(session, _INSERT_ENTRIES, [_row(e) for e in entries])
    await session.execute(
        update(HOLDS).where(HOLDS.c.hold_id == lease_id).values(amount=HOLDS.c.amount - total)
    )
    await store.move(session, org_id, balance=-total, held=-total)
    spent: dict[tuple[str | None, str], int] = {}
    for s in fresh.values():
        if s.amount > 0:
            group = (s.api_key_id, month_of(s.at))
            spent[group] = spent.get(group, 0) + s.amount
    for (api_key_id, month), amount in spent.items():
        await add_spent(session, org_id, api_key_id, month, amount)
    return entries


async def _charge_each(
    session: AsyncSession, account: store.Account, settles: list[LeasedSettle]
) -> list[Entry]:
    """The lease is gone (or short): each settle is a charge capped at what is available."""
    entries = []
    for s in settles:
        details = {
            k: v for k, v in s.details.items() if k not in ("requested", "held", "shortfall", "api_key_id")
        }
        details["lease_closed"] = True
        entry = await rules.charge(
            session,
            account,
            s.at,
            s.amount,
            s.key,
            hold_id=None,
            held=0,
            details=details,
            api_key_id=s.api_key_id,
        )
        account = store.Account(account.org_id, account.balance - entry.amount, account.held, exists=True)
        entries.append(entry)
    return entries


async def imported_any(session: AsyncSession, org_id: str) -> bool:
    """Whether any legacy row was imported for the org (keys `legacy:<request id>`; a fixed-length
    prefix compared, exact under any collation, as `billing.ledger_store.entries_by_prefixes`)."""
    prefix = func.substr(ENTRIES.c.idempotency_key, 1, len(LEGACY_PREFIX))
    query = select(ENTRIES.c.id).where(ENTRIES.c.org_id == org_id, prefix == LEGACY_PREFIX).limit(1)
    return (await session.scalar(query)) is not None


def _row(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "org_id": entry.org_id,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "idempotency_key": entry.idempotency_key,
        "hold_id": None,
        "details": dict(entry.details),
        "created_at": entry.created_at,
        "expires_at": None,
    }
