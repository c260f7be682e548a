"""`billing.lease.LeaseBook` and its journal, on both databases: draws served from memory,
settles written behind and exactly once, small balances on per-request holds, and a dead
process's journal replayed by the next one (the process-kill case of docs/billing.md#speed)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from billing.journal import orphans
from billing.lease import LEASE_HOLDS, LeaseBook
from billing.ledger import Ledger
from billing.ledger_query import list_entries
from billing.ledger_tables import EntryKind
from billing.ledger_types import Entry
from server.db import Database
from tests.billing.ledger_fakes import Clock, assert_consistent, entry_count

ORG = "org_lease"
HOLD = 1_000
GRANT = 10_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(db: Database, clock: Clock) -> Ledger:
    return Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=clock)


async def _book(ledger: Ledger, tmp_path: Path, clock: Clock) -> LeaseBook:
    book = LeaseBook(ledger, tmp_path / "journal", clock=clock, drain_interval=3600)
    await book.start()
    return book


async def _kinds(db: Database) -> list[EntryKind]:
    async with db.sessions() as session:
        return sorted((e.kind for e in await list_entries(session, ORG)), key=lambda k: k.value)


async def test_draws_come_from_memory_and_settles_are_written_once(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock
) -> None:
    await ledger.grant(ORG, GRANT, "grant-1")
    book = await _book(ledger, tmp_path, clock)
    first = await book.reserve(ORG, HOLD)
    assert first is not None and first.lease.amount == HOLD * LEASE_HOLDS
    written = await entry_count(db, ORG)
    draws = [book.take(ORG, HOLD) for _ in range(20)]  # from memory: no await at all
    assert all(d is not None and d.lease is first.lease for d in draws)
    charged = 0
    for i, draw in enumerate([first, *draws]):
        assert draw is not None
        charged += await book.settle(
            draw, 100 + i, f"pf:r{i}:llm:settle", {}, api_key_id=None, request_id=f"r{i}"
        )
    assert await entry_count(db, ORG) == written  # journaled, not yet in the ledger
    mid = await ledger.balance(ORG)
    assert (mid.balance, mid.held) == (GRANT, HOLD * LEASE_HOLDS)

    await book.drain()  # written behind: balance moves, the lease still open and consistent
    after = await assert_consistent(db, ledger, ORG)
    assert (after.balance, after.held, after.open_holds) == (GRANT - charged, HOLD * LEASE_HOLDS - charged, 1)
    await book.drain()  # nothing left: nothing more written
    assert await entry_count(db, ORG, EntryKind.SETTLE.value) == 21

    await book.aclose()  # the lease's unused part goes back
    final = await assert_consistent(db, ledger, ORG)
    assert (final.balance, final.held, final.open_holds) == (GRANT - charged, 0, 0)
    assert await _kinds(db) == [EntryKind.GRANT, EntryKind.HOLD, EntryKind.RELEASE, *[EntryKind.SETTLE] * 21]
    assert list(orphans(tmp_path / "journal")) == []  # a clean close leaves no journal


async def test_a_release_gives_the_draw_back_and_a_big_charge_is_capped_by_the_lease(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock
) -> None:
    await ledger.grant(ORG, GRANT, "grant-1")
    book = await _book(ledger, tmp_path, clock)
    draw = await book.reserve(ORG, HOLD)
    assert draw is not None
    lease = draw.lease
    book.release(draw)
    book.release(draw)  # once only
    assert lease.free == lease.amount and lease.drawing == 0
    big = book.take(ORG, HOLD)
    assert big is not None
    assert (
        await book.settle(big, lease.amount * 2, "pf:big:llm:settle", {}, api_key_id=None, request_id=None)
        == lease.amount
    )
    await book.flush()
    [settle] = [e for e in await _entries(db) if e.kind is EntryKind.SETTLE]
    assert (settle.amount, settle.shortfall) == (lease.amount, lease.amount)
    final = await assert_consistent(db, ledger, ORG)
    assert (final.balance, final.held) == (GRANT - lease.amount, 0)
    await book.aclose()


async def _entries(db: Database) -> list[Entry]:
    async with db.sessions() as session:
        return await list_entries(session, ORG)


async def test_a_small_balance_takes_per_request_holds(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock
) -> None:
    await ledger.grant(ORG, HOLD * 10, "grant-1")  # half of it is less than 8 holds
    book = await _book(ledger, tmp_path, clock)
    assert await book.reserve(ORG, HOLD) is None
    assert await entry_count(db, ORG) == 1  # refused leases write nothing
    await book.aclose()


async def test_a_dead_process_journal_is_replayed_once_by_the_next(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock
) -> None:
    await ledger.grant(ORG, GRANT, "grant-1")
    dead = await _book(ledger, tmp_path, clock)
    draws = [await dead.reserve(ORG, HOLD) for _ in range(5)]
    costs = [
        await dead.settle(d, 200, f"pf:k{i}:llm:settle", {}, api_key_id=None, request_id=None)
        for i, d in enumerate(draws)
        if d
    ]
    in_flight = await dead.reserve(ORG, HOLD)  # never settles: the process dies first
    assert in_flight is not None and sum(costs) == 1_000
    # What a kill leaves: the journal file, its lock gone with the process, nothing drained.
    journal = dead._journal  # the test plays the kernel closing a dead process's files
    assert journal is not None
    await dead._background.stop()
    copy = tmp_path / "copy.log"
    shutil.copy(journal.path, copy)
    journal.close(remove=False)
    assert await entry_count(db, ORG, EntryKind.SETTLE.value) == 0

    survivor = await _book(ledger, tmp_path, clock)  # start replays it
    after = await assert_consistent(db, ledger, ORG)
    assert after.balance == GRANT - 1_000 and after.open_holds == 1  # the dead lease waits for its TTL
    shutil.copy(copy, tmp_path / "journal" / "again.log")  # the same lines twice: nothing more
    assert await survivor.replay_orphans() == 1
    assert await entry_count(db, ORG, EntryKind.SETTLE.value) == 5
    assert list((tmp_path / "journal").glob("*.log")) == [survivor._journal.path]

    clock.advance(seconds=60)  # the dead lease's TTL: the sweeper releases it, the ledger is whole
    assert len(await ledger.release_expired(clock())) == 1
    final = await assert_consistent(db, ledger, ORG)
    assert (final.balance, final.held, final.open_holds) == (GRANT - 1_000, 0, 0)
    await survivor.aclose()


async def test_settles_of_an_expired_lease_are_charged_against_what_is_available(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock
) -> None:
    await ledger.grant(ORG, GRANT, "grant-1")
    book = await _book(ledger, tmp_path, clock)
    draw = await book.reserve(ORG, HOLD)
    assert draw is not None
    clock.advance(seconds=61)  # the segment outlived the lease's TTL and the sweeper ran
    assert len(await ledger.release_expired(clock())) == 1
    assert await book.settle(draw, 300, "pf:late:llm:settle", {}, api_key_id=None, request_id=None) == 300
    await book.flush()
    [settle] = [e for e in await _entries(db) if e.kind is EntryKind.SETTLE]
    assert settle.amount == 300 and settle.hold_id is None
    final = await assert_consistent(db, ledger, ORG)
    assert (final.balance, final.held, final.open_holds) == (GRANT - 300, 0, 0)
    await book.aclose()


async def test_a_journal_that_grows_is_replaced_and_removed_once_written(
    db: Database, ledger: Ledger, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("billing.lease.ROTATE_BYTES", 0)  # every drain with lines rotates
    await ledger.grant(ORG, GRANT, "grant-1")
    book = await _book(ledger, tmp_path, clock)
    draw = await book.reserve(ORG, HOLD)
    assert draw is not None
    await book.settle(draw, 100, "pf:one:llm:settle", {}, api_key_id=None, request_id=None)
    [first] = list((tmp_path / "journal").glob("*.log"))
    await book.drain()
    [second] = list((tmp_path / "journal").glob("*.log"))
    assert second != first and not first.exists()
    assert await entry_count(db, ORG, EntryKind.SETTLE.value) == 1
    await book.aclose()
    assert list((tmp_path / "journal").glob("*.log")) == []
