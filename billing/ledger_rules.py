"""What a ledger write decides once it holds the org's lock: replays, credits, charges, expiry.

Pure decisions over rows read under the lock (`billing.ledger_store`), and the entry insert that
records them; `billing.ledger.Ledger` wraps each in its transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing import ledger_store as store
from billing.ledger_tables import EntryKind
from billing.ledger_types import (
    EXPIRED_PREFIX,
    Entry,
    HoldClosedError,
    HoldNotFoundError,
    IdempotencyConflictError,
    RequestAlreadyChargedError,
    legacy_key,
)
from billing.money import MAX_MICRO_USD, AmountError, format_usd
from billing.preflight import InsufficientCreditsError
from billing.spend import month_of
from billing.spend_store import add_spent
from foundation.audit import AuditEntry
from foundation.db import new_id


def check_amount(amount: int, *, positive: bool, signed: bool = False) -> None:
    """An integer of micro-USD: > 0 (`positive`), non-zero (`signed`), or >= 0; at most MAX_MICRO_USD."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise AmountError("amounts are integers of micro-USD", param="amount")
    if signed and amount == 0:
        raise AmountError("the amount must not be zero", param="amount")
    if not signed and (amount <= 0 if positive else amount < 0):
        raise AmountError(
            "the amount must be " + ("positive" if positive else "zero or more"), param="amount"
        )
    if abs(amount) > MAX_MICRO_USD:
        raise AmountError(f"amounts are at most {format_usd(MAX_MICRO_USD)} USD", param="amount")


def replay(row: Any, **expected: Any) -> Entry:
    """The first entry written with this key, if the call asks for the same thing; else a conflict."""
    first = Entry.from_row(row, replayed=True)
    seen = {
        "kind": first.kind,
        "amount": first.amount,
        "hold_id": first.hold_id,
        "requested": first.details.get("requested"),
    }
    if any(seen[name] != value for name, value in expected.items()):
        raise IdempotencyConflictError(first.idempotency_key, first)
    return first


async def first_unless_imported(session: AsyncSession, org_id: str, key: str, request_id: str | None) -> Any:
    """The entry first written with `key`, if any; raises `RequestAlreadyChargedError` when
    `request_id` was imported as a legacy charge. One statement either way (both keys in one
    indexed lookup), so the request path pays no extra round trip for the check."""
    if request_id is None:
        return await store.entry_by_key(session, org_id, key)
    imported = legacy_key(request_id)
    found = await store.entries_by_keys(session, org_id, (key, imported))
    if imported in found:
        raise RequestAlreadyChargedError(request_id)
    return found.get(key)


async def insert(
    session: AsyncSession,
    org_id: str,
    kind: EntryKind,
    amount: int,
    key: str,
    now: datetime,
    *,
    entry_id: str | None = None,
    hold_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> Entry:
    entry = Entry(
        entry_id or new_id("led"), org_id, kind, amount, key, hold_id, dict(details or {}), now, expires_at
    )
    await store.insert_entry(
        session,
        {
            "id": entry.id,
            "org_id": org_id,
            "kind": kind.value,
            "amount": amount,
            "idempotency_key": key,
            "hold_id": hold_id,
            "details": entry.details,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    return entry


async def charge(
    session: AsyncSession,
    account: store.Account,
    now: datetime,
    requested: int,
    key: str,
    *,
    hold_id: str | None,
    held: int,
    details: Mapping[str, Any] | None,
    api_key_id: str | None = None,
) -> Entry:
    """Charge `requested`, capped at what is available once the hold (if any) is given back; the
    hold (already taken from the open holds) is closed by the same entry. What is charged also
    adds to the month's spend totals of the org and of `api_key_id` (`billing.spend_store`)."""
    charged = min(requested, account.available + held)
    info = charge_details(details, requested, charged, held, api_key_id)
    entry = await insert(
        session, account.org_id, EntryKind.SETTLE, charged, key, now, hold_id=hold_id, details=info
    )
    await store.move(session, account.org_id, balance=-charged, held=-held)
    if charged > 0:
        await add_spent(session, account.org_id, api_key_id, month_of(now), charged)
    return entry


def charge_details(
    details: Mapping[str, Any] | None, requested: int, charged: int, held: int, api_key_id: str | None
) -> dict[str, Any]:
    """A settle entry's details: the caller's, what was requested and held, any shortfall, the key."""
    info: dict[str, Any] = {**(details or {}), "requested": requested, "held": held}
    if charged < requested:
        info["shortfall"] = requested - charged
    if api_key_id:
        info["api_key_id"] = api_key_id
    return info


async def closed_or_missing(session: AsyncSession, org_id: str, hold_id: str) -> Exception:
    """Why a hold could not be taken: it was closed already, or it is not this org's hold."""
    closing = await store.closing_entry(session, hold_id)
    if closing is None or closing.org_id != org_id:
        return HoldNotFoundError(f"no open hold {hold_id!r}", param="hold_id")
    expired = str(closing.idempotency_key).startswith(EXPIRED_PREFIX)
    return HoldClosedError(hold_id, EntryKind(closing.kind), expired=expired)


async def check_refund(session: AsyncSession, org_id: str, hold_id: str, amount: int) -> None:
    """A refund naming a hold returns at most what that hold's settle charged, over all refunds."""
    closing = await store.closing_entry(session, hold_id)
    if closing is None or closing.org_id != org_id or closing.kind != EntryKind.SETTLE.value:
        raise HoldNotFoundError(f"no settled hold {hold_id!r} to refund", param="hold_id")
    if await store.refunded_for(session, org_id, hold_id) + amount > int(closing.amount):
        raise AmountError(
            f"the refunds would exceed the {format_usd(int(closing.amount))} USD charged", param="amount"
        )


async def credit(
    session: AsyncSession,
    account: store.Account,
    now: datetime,
    *,
    kind: EntryKind,
    amount: int,
    key: str,
    reason: str | None,
    actor: str,
    hold_id: str | None,
) -> Entry:
    """A grant, purchase, refund or adjustment (the only signed one), with its audit event."""
    org_id = account.org_id
    first = await store.entry_by_key(session, org_id, key)
    if first is not None:
        return replay(first, kind=kind, amount=amount, hold_id=hold_id)
    if account.balance + amount > MAX_MICRO_USD:
        raise AmountError(f"the balance would exceed {format_usd(MAX_MICRO_USD)} USD", param="amount")
    if account.available + amount < 0:
        raise InsufficientCreditsError(
            f"a negative adjustment may take at most the available {format_usd(account.available)} USD",
            requested=-amount,
            available=account.available,
        )
    if hold_id is not None:
        await check_refund(session, org_id, hold_id, amount)
    entry = await insert(
        session, org_id, kind, amount, key, now, hold_id=hold_id, details={"reason": reason} if reason else {}
    )
    await store.move(session, org_id, balance=amount)
    audit = AuditEntry(
        org_id,
        actor,
        f"credits.{kind.value}",
        "ledger_entry",
        entry.id,
        {"amount_usd": format_usd(amount)},
        at=now,
    )
    table, values = audit.row_values()
    await session.execute(sa_insert(table).values(**values))
    return entry


async def expire(
    session: AsyncSession, account: store.Account, at: datetime, *, hold_id: str, now: datetime
) -> Entry | None:
    """The sweeper's release of a hold expired by `now`; None if it was closed meanwhile (by a
    settle, a release or another sweeper) and so is not this sweeper's to release."""
    held = await store.take_hold(session, hold_id, account.org_id, expired_by=now)
    if held is None:
        return None
    info = {"reason": "expired", "swept_at": now.isoformat()}
    entry = await insert(
        session,
        account.org_id,
        EntryKind.RELEASE,
        held,
        EXPIRED_PREFIX + hold_id,
        at,
        hold_id=hold_id,
        details=info,
    )
    await store.move(session, account.org_id, held=-held)
    return entry


async def release(
    session: AsyncSession,
    account: store.Account,
    now: datetime,
    *,
    hold_id: str,
    key: str,
    reason: str | None,
) -> Entry:
    """Give an open hold back; a released one returns its release, a settled one is refused."""
    org_id = account.org_id
    first = await store.entry_by_key(session, org_id, key)
    if first is not None:
        return replay(first, kind=EntryKind.RELEASE, hold_id=hold_id)
    held = await store.take_hold(session, hold_id, org_id)
    if held is None:
        closing = await store.closing_entry(session, hold_id)
        if closing is not None and closing.kind == EntryKind.RELEASE.value and closing.org_id == org_id:
            return Entry.from_row(closing, replayed=True)
        raise await closed_or_missing(session, org_id, hold_id)
    info = {"reason": reason} if reason else {}
    entry = await insert(session, org_id, EntryKind.RELEASE, held, key, now, hold_id=hold_id, details=info)
    await store.move(session, org_id, held=-held)
    return entry
