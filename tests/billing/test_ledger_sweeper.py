"""`billing.ledger_sweeper.HoldSweeper`: the background task releases expired holds, by its clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from billing.ledger import Ledger
from billing.ledger_sweeper import HoldSweeper
from billing.ledger_types import Entry
from server.db import Database
from tests.billing.ledger_fakes import T0, Clock, assert_consistent

ORG = "org_sweep"


async def test_the_sweeper_task_releases_what_expired_by_its_clock(db: Database) -> None:
    ledger = Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=Clock())
    await ledger.grant(ORG, 10_000_000, "grant")
    # Five expired holds and batches of two: the sweep must go on until none is left.
    expired = {(await ledger.hold(ORG, 10_000, f"hold-{i}")).id for i in range(5)}
    fresh = await ledger.hold(ORG, 10_000, "fresh", ttl=timedelta(hours=1))
    sweeps: asyncio.Queue[list[Entry]] = asyncio.Queue()

    sweeper = HoldSweeper(
        ledger, interval=3600, batch=2, clock=Clock(T0 + timedelta(minutes=5)), on_sweep=sweeps.put_nowait
    )
    sweeper.start()
    try:
        released = await asyncio.wait_for(sweeps.get(), timeout=60)
        assert sweeper.running
    finally:
        await sweeper.aclose()
    assert not sweeper.running
    assert {e.hold_id for e in released} == expired
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held, balance.open_holds) == (10_000_000, fresh.amount, 1)
