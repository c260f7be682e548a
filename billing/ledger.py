"""The credits ledger: grants, holds, settlements and the rest, exact under races and crashes.

Amounts are integers of micro-USD (`billing.money`). Each operation is one transaction that
writes one append-only entry (`billing.ledger_tables`) and updates the org's account row and
open-hold rows in step, under the per-org lock described in `billing.ledger_store`. So:

- the balance is always the sum of the entries' effects, and `balance - held` (available) never
  goes below zero, however many callers race (the database also refuses it: a CHECK);
- a hold is refused (`InsufficientCreditsError`) when available cannot cover it, and a refused
  hold writes nothing;
- every operation takes an idempotency key, unique per org: a replay, even racing the first
  call, returns the first call's entry (`replayed=True`) and writes nothing;
- a hold is closed exactly once, by a settle or a release; a settle charges the actual cost,
  at most what is available including the hold itself, and records any shortfall;
- holds expire: `release_expired(now)` releases every open hold past its TTL, once each, safe
  with any number of sweepers running at once (`billing.ledger_sweeper`).

The request path's hold and settle try a shorter transaction first (`billing.ledger_fast`) and
fall back to the general one on anything unusual, so the answers are the same.

A crash rolls back the transaction it interrupted; a committed entry is durable before the call
returns. What a crash leaves is open holds, which the sweeper releases after their TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import ledger_fast
from billing import ledger_history as history
from billing import ledger_rules as rules
from billing import ledger_store as store
from billing.ledger_tables import EntryKind
from billing.ledger_types import Balance, Entry, HoldNotFoundError, check_key
from billing.legacy_billing import LegacyRow
from billing.preflight import InsufficientCreditsError
from foundation.db import new_id, utcnow

T = TypeVar("T")
Write = Callable[[AsyncSession, store.Account, datetime], Awaitable[T]]
Fast = Callable[[AsyncSession, datetime], Awaitable[T]]

DEFAULT_HOLD_TTL = timedelta(seconds=900)
_SQLITE_LOCK_RETRIES = 3
"""Each attempt already waits `busy_timeout` for SQLite's write lock; then it is tried anew."""


class Ledger:
    """The ledger over a session factory. One per process; every method is its own transaction.
    Amounts are integers of micro-USD; every write takes an idempotency key (see module doc)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        hold_ttl: timedelta = DEFAULT_HOLD_TTL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if hold_ttl <= timedelta(0):
            raise ValueError("hold_ttl must be positive")
        self._sessions = sessions
        self.hold_ttl = hold_ttl
        self._clock = clock
        bind = sessions.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        self._writer = asyncio.Lock()

    async def grant(
        self,
        org_id: str,
        amount: int,
        idempotency_key: str,
        reason: str | None = None,
        *,
        actor: str = "system",
    ) -> Entry:
        """Credit the org `amount` (> 0), as the operator's gift."""
        return await self._credit(EntryKind.GRANT, org_id, amount, idempotency_key, reason, actor=actor)

    async def purchase(
        self,
        org_id: str,
        amount: int,
        idempotency_key: str,
        reason: str | None = None,
        *,
        actor: str = "system",
    ) -> Entry:
        """Credit the org `amount` (> 0) it paid for."""
        return await self._credit(EntryKind.PURCHASE, org_id, amount, idempotency_key, reason, actor=actor)

    async def refund(
        self,
        org_id: str,
        amount: int,
        idempotency_key: str,
        reason: str | None = None,
        *,
        hold_id: str | None = None,
        actor: str = "system",
    ) -> Entry:
        """Credit back `amount` (> 0); naming `hold_id`, at most what that settled hold charged."""
        return await self._credit(
            EntryKind.REFUND, org_id, amount, idempotency_key, reason, actor=actor, hold_id=hold_id
        )

    async def adjustment(
        self, org_id: str, amount: int, idempotency_key: str, reason: str, *, actor: str = "system"
    ) -> Entry:
        """An operator's signed correction; a negative one takes at most what is available."""
        return await self._credit(EntryKind.ADJUSTMENT, org_id, amount, idempotency_key, reason, actor=actor)

    async def hold(
        self,
        org_id: str,
        amount: int,
        idempotency_key: str,
        ttl: timedelta | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Entry:
        """Reserve `amount` (> 0) until settled, released or expired (after `ttl`, default the ledger's);
        the entry's `id` is the hold id. Raises `InsufficientCreditsError` (or, for an imported
        `request_id`, `RequestAlreadyChargedError`), writing nothing."""
        rules.check_amount(amount, positive=True)
        key = check_key(idempotency_key)
        ttl = ttl or self.hold_ttl

        hold_id = new_id("hld")
        info = {**(details or {}), "ttl_seconds": ttl.total_seconds()}

        fast = partial(
            ledger_fast.hold, org_id=org_id, amount=amount, key=key, hold_id=hold_id, details=info, ttl=ttl
        )
        fast = partial(fast, request_id=request_id)

        async def run(session: AsyncSession, account: store.Account, now: datetime) -> Entry:
            first = await rules.first_unless_imported(session, org_id, key, request_id)
            if first is not None:
                return rules.replay(first, kind=EntryKind.HOLD, amount=amount)
            if account.available < amount:
                raise InsufficientCreditsError(
                    "the organisation's credits cannot cover this request",
                    requested=amount,
                    available=account.available,
                )
            expires_at = now + ttl
            entry = await rules.insert(
                session,
                org_id,
                EntryKind.HOLD,
                amount,
                key,
                now,
                entry_id=hold_id,
                details=info,
                expires_at=expires_at,
            )
            await store.open_hold(session, hold_id, org_id, amount, expires_at)
            await store.move(session, org_id, held=amount)
            return entry

        return await self._write(org_id, run, fast=fast)

    async def settle(
        self,
        hold_id: str,
        actual_amount: int,
        idempotency_key: str,
        *,
        org_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        api_key_id: str | None = None,
        held: int | None = None,
    ) -> Entry:
        """Close the hold, charging `actual_amount` (>= 0): less than held gives the rest back;
        more charges at most what is available and records the `shortfall`. The charge counts
        toward this month's spend of the org and of `api_key_id` (`billing.spend_tables`). Raises
        `HoldClosedError` (closed already, under another key) or `HoldNotFoundError`. A caller that
        knows the amount `held` (and `org_id`) saves statements (`billing.ledger_fast`); a wrong
        one only costs them back."""
        rules.check_amount(actual_amount, positive=False)
        key = check_key(idempotency_key)
        org = org_id or await self._hold_org(hold_id)
        fast = None
        if org_id is not None and held is not None:
            info = rules.charge_details(details, actual_amount, actual_amount, held, api_key_id)
            fast = partial(ledger_fast.settle, org_id=org, hold_id=hold_id, held=held, amount=actual_amount)
            fast = partial(fast, key=key, entry_id=new_id("led"), details=info, api_key_id=api_key_id)

        async def run(session: AsyncSession, account: store.Account, now: datetime) -> Entry:
            first = await store.entry_by_key(session, org, key)
            if first is not None:
                return rules.replay(first, kind=EntryKind.SETTLE, hold_id=hold_id, requested=actual_amount)
            held = await store.take_hold(session, hold_id, org)
            if held is None:
                raise await rules.closed_or_missing(session, org, hold_id)
            return await rules.charge(
                session,
                account,
                now,
                actual_amount,
                key,
                hold_id=hold_id,
                held=held,
                details=details,
                api_key_id=api_key_id,
            )

        return await self._write(org, run, fast=fast)

    async def charge(
        self,
        org_id: str,
        amount: int,
        idempotency_key: str,
        *,
        details: Mapping[str, Any] | None = None,
        api_key_id: str | None = None,
        request_id: str | None = None,
    ) -> Entry:
        """A settle without a hold (its hold expired, or none was taken): charges `amount` (>= 0), at
        most what is available, records any `shortfall`, counted like a settle's; refuses a
        `request_id` as `hold` does."""
        rules.check_amount(amount, positive=False)
        key = check_key(idempotency_key)

        async def run(session: AsyncSession, account: store.Account, now: datetime) -> Entry:
            first = await rules.first_unless_imported(session, org_id, key, request_id)
            if first is not None:
                return rules.replay(first, kind=EntryKind.SETTLE, hold_id=None, requested=amount)
            return await rules.charge(
                session,
                account,
                now,
                amount,
                key,
                hold_id=None,
                held=0,
                details=details,
                api_key_id=api_key_id,
            )

        return await self._write(org_id, run, create=True)

    async def release(
        self,
        hold_id: str,
        idempotency_key: str | None = None,
        *,
        org_id: str | None = None,
        reason: str | None = None,
    ) -> Entry:
        """Give the hold back unused. Releasing a released hold returns that release (`replayed`);
        a settled one raises `HoldClosedError`."""
        key = check_key(idempotency_key or f"release:{hold_id}")
        org = org_id or await self._hold_org(hold_id)
        return await self._write(org, partial(rules.release, hold_id=hold_id, key=key, reason=reason))

    async def release_expired(self, now: datetime, *, limit: int = 500) -> list[Entry]:
        """Release up to `limit` open holds whose TTL ended by `now`; returns the releases this call
        wrote. Any number of sweepers may run at once: each hold is released once."""
        async with self._sessions() as session:
            due = await store.due_holds(session, now, limit)
        released: list[Entry] = []
        for hold_id, org_id in due:
            entry = await self._write(org_id, partial(rules.expire, hold_id=hold_id, now=now))
            if entry is not None:
                released.append(entry)
        return released

    async def import_history(
        self, org_id: str, rows: Sequence[LegacyRow], *, dry_run: bool = False
    ) -> list[history.Outcome]:
        """One org's legacy rows as historical settles, one transaction (`billing.ledger_history`)."""
        if dry_run:
            return await history.dry_run(self._sessions, org_id, self._clock(), rows)
        return await self._write(org_id, partial(history.apply, rows=rows, write=True), create=True)

    async def balance(self, org_id: str) -> Balance:
        """The org's balance, held and available, from its account row (no scan of entries)."""
        async with self._sessions() as session:
            return await store.balance(session, org_id)

    async def _credit(
        self,
        kind: EntryKind,
        org_id: str,
        amount: int,
        idempotency_key: str,
        reason: str | None,
        *,
        actor: str,
        hold_id: str | None = None,
    ) -> Entry:
        rules.check_amount(amount, positive=True, signed=kind is EntryKind.ADJUSTMENT)
        key = check_key(idempotency_key)
        credit = partial(
            rules.credit, kind=kind, amount=amount, key=key, reason=reason, actor=actor, hold_id=hold_id
        )
        return await self._write(org_id, credit, create=True)

    async def _hold_org(self, hold_id: str) -> str:
        """The org of a hold: read on its own (entries never change) before the write takes its lock."""
        async with self._sessions() as session:
            row = await store.entry_by_id(session, hold_id)
        if row is None or row.kind != EntryKind.HOLD.value:
            raise HoldNotFoundError(f"no hold {hold_id!r}", param="hold_id")
        return str(row.org_id)

    async def _write(
        self, org_id: str, fn: Write[T], *, create: bool = False, fast: Fast[T] | None = None
    ) -> T:
        """Run `fn` in one transaction under the org's lock (see `billing.ledger_store`); `fast`
        first, when given, and `fn` only if it gave up (`billing.ledger_fast`)."""
        if fast is not None:
            try:
                return await self._transaction(fast)
            except ledger_fast.SlowPath:
                pass

        async def general(session: AsyncSession, now: datetime) -> T:
            account = await store.lock_account(session, org_id, now, create=create)
            return await fn(session, account, now)

        return await self._transaction(general)

    async def _transaction(self, fn: Fast[T]) -> T:
        for attempt in range(_SQLITE_LOCK_RETRIES):
            try:
                async with self._serialised(), self._sessions() as session, session.begin():
                    return await fn(session, self._clock())
            except OperationalError as exc:
                if not (self._sqlite and "locked" in str(exc.orig)) or attempt == _SQLITE_LOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _serialised(self) -> AsyncIterator[None]:
        """SQLite has one writer at a time anyway: queue this process's writers here, not in the pool."""
        if not self._sqlite:
            yield
            return
        async with self._writer:
            yield
