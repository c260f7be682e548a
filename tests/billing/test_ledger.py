"""`billing.ledger`: what each operation writes, on both databases, one caller at a time.

Races are in test_ledger_races.py, crashes in test_ledger_crash.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing.ledger import Ledger
from billing.ledger_tables import EntryKind
from billing.ledger_types import HoldClosedError, HoldNotFoundError, IdempotencyConflictError
from billing.money import AmountError
from billing.preflight import InsufficientCreditsError
from foundation.audit import AuditEvent
from foundation.errors import RequestError
from server.db import Database
from tests.billing.ledger_fakes import T0, Clock, assert_consistent, entry_count

ORG = "org_ledger"
USD = 1_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(db: Database, clock: Clock) -> Ledger:
    return Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=clock)


async def test_a_grant_is_one_entry_and_replaying_its_key_changes_nothing(
    db: Database, ledger: Ledger
) -> None:
    first = await ledger.grant(ORG, 10 * USD, "grant-1", "welcome", actor="cli")
    assert (first.kind, first.amount, first.replayed, first.details) == (
        EntryKind.GRANT,
        10 * USD,
        False,
        {"reason": "welcome"},
    )
    again = await ledger.grant(ORG, 10 * USD, "grant-1", "welcome again")
    assert again.replayed and again.id == first.id and again.details == {"reason": "welcome"}
    with pytest.raises(IdempotencyConflictError, match="already used for a grant"):
        await ledger.grant(ORG, 11 * USD, "grant-1")
    with pytest.raises(IdempotencyConflictError):
        await ledger.hold(ORG, 10 * USD, "grant-1")
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.available) == (10 * USD, 0, 10 * USD)
    assert await entry_count(db, ORG) == 1
    async with db.sessions() as session:
        audit = (await session.scalars(select(AuditEvent).where(AuditEvent.org_id == ORG))).all()
    assert [(a.action, a.target_id, a.details) for a in audit] == [
        ("credits.grant", first.id, {"amount_usd": "10.00"})
    ]


async def test_bad_amounts_and_keys_are_refused_before_anything_is_written(
    db: Database, ledger: Ledger
) -> None:
    for amount in (0, -1, 10**16):
        with pytest.raises(AmountError):
            await ledger.grant(ORG, amount, f"g{amount}")
    with pytest.raises(AmountError, match="integers of micro-USD"):
        await ledger.grant(ORG, 1.5, "float")  # type: ignore[arg-type]
    with pytest.raises(AmountError, match="not be zero"):
        await ledger.adjustment(ORG, 0, "adj", "nothing")
    for key in ("", "x" * 129, "tab\there", "expire:hld_x"):
        with pytest.raises(RequestError):
            await ledger.grant(ORG, USD, key)
    assert await entry_count(db) == 0


async def test_settling_less_than_held_charges_the_actual_and_frees_the_rest(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, 10 * USD, "g")
    hold = await ledger.hold(ORG, 3 * USD, "h1", details={"request_id": "req_1"})
    assert hold.id.startswith("hld_") and hold.expires_at == T0 + timedelta(seconds=60)
    assert (await assert_consistent(db, ledger, ORG)).available == 7 * USD
    settled = await ledger.settle(hold.id, 1_250_000, "s1")
    assert (settled.kind, settled.amount, settled.hold_id, settled.shortfall) == (
        EntryKind.SETTLE,
        1_250_000,
        hold.id,
        0,
    )
    assert settled.details == {"requested": 1_250_000, "held": 3 * USD}
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.open_holds) == (8_750_000, 0, 0)


async def test_settling_more_than_held_charges_what_is_available_and_records_the_shortfall(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 5 * USD, "g")
    covered = await ledger.hold(ORG, 1 * USD, "h1")
    assert (await ledger.settle(covered.id, 2 * USD, "s1")).amount == 2 * USD  # more than held, but available
    other = await ledger.hold(ORG, 1 * USD, "h-other")
    short = await ledger.hold(ORG, 1 * USD, "h2")
    settled = await ledger.settle(short.id, 10 * USD, "s2")
    # 3 USD left, 1 USD held by the other hold: this one may take its own 1 + the free 1.
    assert (settled.amount, settled.shortfall) == (2 * USD, 8 * USD)
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.available) == (1 * USD, 1 * USD, 0)
    assert (await ledger.settle(other.id, 5 * USD, "s3")).amount == 1 * USD
    assert (await assert_consistent(db, ledger, ORG)).balance == 0


async def test_a_hold_the_balance_cannot_cover_is_refused_and_writes_nothing(
    db: Database, ledger: Ledger
) -> None:
    with pytest.raises(InsufficientCreditsError) as no_account:
        await ledger.hold(ORG, 1, "h0")
    assert (no_account.value.requested, no_account.value.available) == (1, 0)
    await ledger.grant(ORG, 2 * USD, "g")
    await ledger.hold(ORG, 1_500_000, "h1")
    before = await ledger.balance(ORG)
    with pytest.raises(InsufficientCreditsError) as caught:
        await ledger.hold(ORG, 500_001, "h2")
    assert caught.value.code == "insufficient_credits" and caught.value.available == 500_000
    assert await ledger.balance(ORG) == before
    assert await entry_count(db, ORG) == 2
    # The refused key was never recorded: the same key may be tried again once credits allow.
    assert (await ledger.hold(ORG, 500_000, "h2")).replayed is False


async def test_a_replayed_hold_is_the_same_hold(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 2 * USD, "g")
    first = await ledger.hold(ORG, 2 * USD, "h1")
    again = await ledger.hold(ORG, 2 * USD, "h1")
    assert again.replayed and again.id == first.id
    assert (await assert_consistent(db, ledger, ORG)).held == 2 * USD
    with pytest.raises(IdempotencyConflictError):
        await ledger.hold(ORG, 1 * USD, "h1")


async def test_release_gives_the_hold_back_and_a_hold_closes_exactly_once(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 5 * USD, "g")
    hold = await ledger.hold(ORG, 2 * USD, "h1")
    released = await ledger.release(hold.id)
    assert (released.kind, released.amount, released.hold_id, released.idempotency_key) == (
        EntryKind.RELEASE,
        2 * USD,
        hold.id,
        f"release:{hold.id}",
    )
    assert (await ledger.release(hold.id, "another-key")).id == released.id  # idempotent whatever the key
    with pytest.raises(HoldClosedError) as caught:
        await ledger.settle(hold.id, USD, "s1")
    assert (caught.value.closed_by, caught.value.expired) == (EntryKind.RELEASE, False)

    settled_hold = await ledger.hold(ORG, 2 * USD, "h2")
    settled = await ledger.settle(settled_hold.id, USD, "s2")
    assert (await ledger.settle(settled_hold.id, USD, "s2")).id == settled.id  # replay
    with pytest.raises(IdempotencyConflictError):
        await ledger.settle(settled_hold.id, 2 * USD, "s2")
    with pytest.raises(HoldClosedError, match="already settled"):
        await ledger.settle(settled_hold.id, USD, "s2-again")
    with pytest.raises(HoldClosedError) as after_settle:
        await ledger.release(settled_hold.id)
    assert after_settle.value.closed_by is EntryKind.SETTLE
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (4 * USD, 0)
    assert await entry_count(db, ORG, "settle") == 1 and await entry_count(db, ORG, "release") == 1


async def test_unknown_holds_and_other_orgs_holds_are_not_found(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 5 * USD, "g")
    hold = await ledger.hold(ORG, USD, "h1")
    grant = await ledger.grant("org_other", USD, "g")
    for missing in ("hld_nope", grant.id):
        with pytest.raises(HoldNotFoundError):
            await ledger.settle(missing, 1, "s")
        with pytest.raises(HoldNotFoundError):
            await ledger.release(missing)
    with pytest.raises(HoldNotFoundError):
        await ledger.settle(hold.id, 1, "s", org_id="org_other")
    assert (await assert_consistent(db, ledger, ORG)).held == USD


async def test_expired_holds_are_swept_once_at_the_injected_time(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, 5 * USD, "g")
    early = await ledger.hold(ORG, USD, "h-early")
    clock.advance(seconds=30)
    late = await ledger.hold(ORG, USD, "h-late", ttl=timedelta(seconds=600))
    assert await ledger.release_expired(T0 + timedelta(seconds=59)) == []
    swept = await ledger.release_expired(T0 + timedelta(seconds=60))
    assert [(e.kind, e.hold_id, e.amount, e.idempotency_key) for e in swept] == [
        (EntryKind.RELEASE, early.id, USD, f"expire:{early.id}")
    ]
    assert await ledger.release_expired(T0 + timedelta(seconds=61)) == []
    with pytest.raises(HoldClosedError) as caught:
        await ledger.settle(early.id, USD, "s-early")
    assert caught.value.expired
    # The segment still has to be paid for: charge it without the hold, at most what is available.
    charged = await ledger.charge(ORG, 5 * USD, "s-early", details={"hold_id": early.id})
    assert (charged.amount, charged.shortfall, charged.hold_id) == (4 * USD, USD, None)
    assert (await ledger.charge(ORG, 5 * USD, "s-early")).replayed
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.open_holds) == (USD, USD, 1)
    assert [e.hold_id for e in await ledger.release_expired(T0 + timedelta(days=1))] == [late.id]
    assert (await assert_consistent(db, ledger, ORG)).held == 0


async def test_refunds_and_adjustments(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 5 * USD, "g")
    hold = await ledger.hold(ORG, 2 * USD, "h1")
    await ledger.settle(hold.id, 2 * USD, "s1")
    refund = await ledger.refund(ORG, USD, "r1", "bad answer", hold_id=hold.id)
    assert (refund.kind, refund.hold_id, refund.effect) == (EntryKind.REFUND, hold.id, USD)
    with pytest.raises(AmountError, match="exceed"):
        await ledger.refund(ORG, USD + 1, "r2", hold_id=hold.id)
    open_hold = await ledger.hold(ORG, USD, "h2")
    with pytest.raises(HoldNotFoundError, match="no settled hold"):
        await ledger.refund(ORG, 1, "r3", hold_id=open_hold.id)
    await ledger.refund(ORG, USD, "r4")  # a refund naming no hold
    assert (await ledger.adjustment(ORG, -2 * USD, "a1", "correction")).effect == -2 * USD
    # 3 USD left of which 1 USD is held: a negative adjustment may take only the other 2.
    with pytest.raises(InsufficientCreditsError, match="at most the available 2.00"):
        await ledger.adjustment(ORG, -2 * USD - 1, "a2", "too much")
    await ledger.adjustment(ORG, -2 * USD, "a3", "all that is free")
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.available) == (USD, USD, 0)


async def test_the_entries_are_append_only_on_both_databases(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, USD, "g")
    for statement in ("UPDATE ledger_entries SET amount = 999", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.session() as session:
                await session.execute(text(statement))
    assert (await assert_consistent(db, ledger, ORG)).balance == USD


async def test_the_database_itself_refuses_overdrafts_and_a_second_close(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, USD, "g")
    hold = await ledger.hold(ORG, USD, "h")
    await ledger.release(hold.id)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(text("UPDATE ledger_accounts SET held = balance + 1"))
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (id, org_id, kind, amount, idempotency_key, hold_id, details, created_at) "
                    "VALUES ('led_x', :org, 'settle', 1, 'forged', :hold, '{}', :at)"
                ),
                {"org": ORG, "hold": hold.id, "at": T0},
            )
    assert await entry_count(db, ORG) == 3
