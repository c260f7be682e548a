"""`billing.ledger_fast`: the request path's hold and settle in fewer statements, and every way
off that path giving the same answers as the general one, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event

from billing.ledger import Ledger
from billing.ledger_types import HoldClosedError, IdempotencyConflictError
from server.db import Database
from tests.billing.ledger_fakes import Clock, assert_consistent, entry_count

ORG = "org_fast"
USD = 1_000_000


@pytest.fixture
def ledger(db: Database) -> Ledger:
    return Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=Clock())


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    sent: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)


async def test_the_request_paths_hold_and_settle_take_three_and_four_statements(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 10 * USD, "g")
    with statements(db) as held:
        hold = await ledger.hold(ORG, 2 * USD, "h1", request_id="req_1", details={"segment": "llm"})
    assert held == ["UPDATE", "INSERT", "INSERT"]
    with statements(db) as settled:
        entry = await ledger.settle(hold.id, 1 * USD, "s1", org_id=ORG, held=hold.amount, api_key_id="key_1")
    assert settled == ["UPDATE", "DELETE", "INSERT", "INSERT"]
    assert entry.details == {"requested": USD, "held": 2 * USD, "api_key_id": "key_1"}
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.open_holds) == (9 * USD, 0, 0)


@pytest.mark.parametrize("told", [1, 3 * USD - 1, 3 * USD + 1, 50 * USD])
async def test_a_settle_told_the_wrong_amount_held_charges_exactly_as_one_told_nothing(
    db: Database, ledger: Ledger, told: int
) -> None:
    await ledger.grant(ORG, 10 * USD, "g")
    other = await ledger.hold(ORG, 4 * USD, "h-other")
    hold = await ledger.hold(ORG, 3 * USD, "h1")
    entry = await ledger.settle(hold.id, 2 * USD, "s1", org_id=ORG, held=told)
    assert (entry.amount, entry.details["held"], entry.replayed) == (2 * USD, 3 * USD, False)
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.open_holds) == (8 * USD, 4 * USD, 1)
    assert (await ledger.settle(other.id, 0, "s2", org_id=ORG, held=other.amount)).amount == 0
    assert (await assert_consistent(db, ledger, ORG)).held == 0


async def test_a_settle_the_balance_cannot_cover_in_full_is_capped_with_its_shortfall(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 3 * USD, "g")
    hold = await ledger.hold(ORG, 1 * USD, "h1")
    await ledger.hold(ORG, 1 * USD, "h2")
    entry = await ledger.settle(hold.id, 5 * USD, "s1", org_id=ORG, held=hold.amount)
    assert (entry.amount, entry.shortfall) == (2 * USD, 3 * USD)
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.available) == (1 * USD, 1 * USD, 0)


async def test_replays_with_credits_to_spare_are_replays_and_move_nothing(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 10 * USD, "g")
    first = await ledger.hold(ORG, 1 * USD, "h1", request_id="req_1")
    again = await ledger.hold(ORG, 1 * USD, "h1", request_id="req_1")
    assert again.replayed and again.id == first.id
    assert (await assert_consistent(db, ledger, ORG)).held == 1 * USD
    with pytest.raises(IdempotencyConflictError):
        await ledger.hold(ORG, 2 * USD, "h1")
    settled = await ledger.settle(first.id, USD // 2, "s1", org_id=ORG, held=first.amount)
    replayed = await ledger.settle(first.id, USD // 2, "s1", org_id=ORG, held=first.amount)
    assert replayed.replayed and replayed.id == settled.id
    with pytest.raises(HoldClosedError):
        await ledger.settle(first.id, USD // 2, "s-other", org_id=ORG, held=first.amount)
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (10 * USD - USD // 2, 0)
    assert await entry_count(db, ORG) == 3


async def test_a_released_hold_is_not_settled_by_the_fast_path(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 10 * USD, "g")
    hold = await ledger.hold(ORG, 1 * USD, "h1")
    await ledger.release(hold.id, org_id=ORG)
    with pytest.raises(HoldClosedError):
        await ledger.settle(hold.id, USD, "s1", org_id=ORG, held=hold.amount)
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (10 * USD, 0)
