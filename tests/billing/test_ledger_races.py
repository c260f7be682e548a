"""The ledger under races, on SQLite and PostgreSQL: exact, never negative, no duplicates.

Callers are split over two engines on the same database (two pools, as two server processes
would be), so what keeps the ledger exact is the database's lock, not the process's own queue.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from billing.ledger import Ledger
from billing.ledger_types import Entry, HoldClosedError
from billing.preflight import InsufficientCreditsError
from server.db import Database
from tests.billing.ledger_fakes import T0, Clock, assert_consistent, entry_count, second_engine

pytestmark = pytest.mark.slow

ORG = "org_race"
USD = 1_000_000


async def test_200_concurrent_hold_and_settle_sequences_stay_exact(db: Database) -> None:
    async with second_engine(db) as other:
        ledgers = [Ledger(db.sessions), Ledger(other.sessions)]
        grant = await ledgers[0].grant(ORG, 50 * USD, "grant")
        rng = random.Random(14)
        # Holds of 0.2-1 USD (about 120 USD asked for in all) settled at 0-150% of the hold.
        plan = [(rng.randint(200_000, USD), rng.randint(0, 150)) for _ in range(200)]
        observed: list[int] = []
        done = asyncio.Event()

        async def sequence(i: int) -> Entry | None:
            ledger = ledgers[i % 2]
            held, percent = plan[i]
            try:
                hold = await ledger.hold(ORG, held, f"hold-{i}")
            except InsufficientCreditsError:
                return None
            await asyncio.sleep(0)  # let others run between the hold and its settlement
            org = ORG if i % 4 < 2 else None  # half look the hold's org up themselves
            return await ledger.settle(hold.id, held * percent // 100, f"settle-{i}", org_id=org)

        async def watch() -> None:
            while not done.is_set():
                observed.append((await ledgers[1].balance(ORG)).available)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(sequence(i) for i in range(200)))
        done.set()
        await watcher

        settled = [r for r in results if r is not None]
        refused = [i for i, r in enumerate(results) if r is None]
        assert settled and refused, "the grant should cover some sequences and not others"
        assert observed and min(observed) >= 0
        balance = await assert_consistent(db, ledgers[0], ORG)
        charged = sum(e.amount for e in settled)
        assert balance.balance == 50 * USD - charged and balance.held == 0
        assert (
            sum(e.shortfall for e in settled)
            == sum(plan[i][0] * plan[i][1] // 100 for i in range(200) if results[i]) - charged
        )
        # Every refused hold wrote nothing; every other sequence wrote exactly one hold and one settle.
        assert await entry_count(db, ORG, "hold") == len(settled) == await entry_count(db, ORG, "settle")
        assert await entry_count(db, ORG) == 1 + 2 * len(settled)

        # Replaying every recorded key changes nothing and returns the first results.
        replays = await asyncio.gather(
            ledgers[1].grant(ORG, 50 * USD, "grant"),
            *(ledgers[i % 2].hold(ORG, plan[i][0], f"hold-{i}") for i in range(200) if results[i]),
            *(
                ledgers[i % 2].settle(r.hold_id or "", plan[i][0] * plan[i][1] // 100, f"settle-{i}")
                for i, r in enumerate(results)
                if r
            ),
        )
        assert all(r.replayed for r in replays)
        assert replays[0].id == grant.id
        assert [r.id for r in replays[1 + len(settled) :]] == [r.id for r in settled]
        assert await assert_consistent(db, ledgers[0], ORG) == balance
        assert await entry_count(db, ORG) == 1 + 2 * len(settled)


async def test_racing_calls_with_one_key_write_one_entry(db: Database) -> None:
    async with second_engine(db) as other:
        ledgers = [Ledger(db.sessions), Ledger(other.sessions)]
        grants = await asyncio.gather(*(ledgers[i % 2].grant(ORG, 10 * USD, "same-grant") for i in range(20)))
        assert len({g.id for g in grants}) == 1 and sum(not g.replayed for g in grants) == 1
        holds = await asyncio.gather(*(ledgers[i % 2].hold(ORG, 3 * USD, "same-hold") for i in range(20)))
        assert len({h.id for h in holds}) == 1 and sum(not h.replayed for h in holds) == 1
        hold_id = holds[0].id
        settles = await asyncio.gather(
            *(ledgers[i % 2].settle(hold_id, 2 * USD, "same-settle") for i in range(20))
        )
        assert len({s.id for s in settles}) == 1 and sum(not s.replayed for s in settles) == 1
        balance = await assert_consistent(db, ledgers[0], ORG)
        assert (balance.balance, balance.held) == (8 * USD, 0)
        assert await entry_count(db, ORG) == 3


async def test_a_hold_raced_by_settle_release_and_sweepers_closes_once(db: Database) -> None:
    clock = Clock()
    async with second_engine(db) as other:
        ledgers = [
            Ledger(db.sessions, clock=clock, hold_ttl=timedelta(seconds=1)),
            Ledger(other.sessions, clock=clock),
        ]
        await ledgers[0].grant(ORG, 100 * USD, "grant")
        holds = [await ledgers[0].hold(ORG, USD, f"hold-{i}") for i in range(12)]
        later = T0 + timedelta(seconds=5)

        async def close(i: int, hold_id: str) -> str:
            try:
                if i % 3 == 0:
                    await ledgers[i % 2].settle(hold_id, USD // 2, f"settle-{hold_id}-{i}")
                    return "settle"
                if i % 3 == 1:
                    return "release" if not (await ledgers[i % 2].release(hold_id)).replayed else "replay"
                return "swept" if await ledgers[i % 2].release_expired(later) else "none"
            except HoldClosedError:
                return "closed"

        outcomes = await asyncio.gather(*(close(i, h.id) for h in holds for i in range(6)))
        assert outcomes.count("settle") + outcomes.count("release") + outcomes.count("swept") >= 1
        balance = await assert_consistent(db, ledgers[0], ORG)
        closes = await entry_count(db, ORG, "settle") + await entry_count(db, ORG, "release")
        assert closes == len(holds) and balance.held == 0 and balance.open_holds == 0
        settled = await entry_count(db, ORG, "settle")
        assert balance.balance == 100 * USD - settled * (USD // 2)


async def test_two_sweepers_release_each_expired_hold_once(db: Database) -> None:
    clock = Clock()
    async with second_engine(db) as other:
        ledgers = [
            Ledger(db.sessions, clock=clock, hold_ttl=timedelta(seconds=60)),
            Ledger(other.sessions, clock=clock),
        ]
        await ledgers[0].grant(ORG, 100 * USD, "grant")
        holds = {(await ledgers[0].hold(ORG, USD, f"hold-{i}")).id for i in range(50)}
        kept = await ledgers[0].hold(ORG, USD, "kept", ttl=timedelta(hours=1))
        first, second = await asyncio.gather(
            *(ledger.release_expired(T0 + timedelta(minutes=2)) for ledger in ledgers)
        )
        released = [e.hold_id for e in first + second]
        assert sorted(released) == sorted(holds)  # every expired hold once, the unexpired one not at all
        balance = await assert_consistent(db, ledgers[0], ORG)
        assert (balance.balance, balance.held, balance.open_holds) == (100 * USD, kept.amount, 1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sqlite_writers_wait_for_the_lock_rather_than_fail(db: Database) -> None:
    # Four engines, each with its own connections, hammering one SQLite file: the busy timeout
    # and the write-first transaction make them queue; none sees "database is locked".
    engines = [db] + [Database(db.url) for _ in range(3)]
    try:
        ledgers = [Ledger(e.sessions) for e in engines]
        await asyncio.gather(*(ledgers[i % 4].grant(f"org_{i % 7}", USD, f"g{i}") for i in range(400)))
        totals = [await assert_consistent(db, ledgers[0], f"org_{n}") for n in range(7)]
        assert sum(t.balance for t in totals) == 400 * USD
    finally:
        for e in engines[1:]:
            await e.dispose()
