"""kill -9 in the middle of a burst of holds and settlements: the ledger stays exact.

A separate process (ledger_worker.py) holds and settles in a loop against the test's database
(a SQLite file, or the PostgreSQL test database) and reports each settlement once it has
returned. It is killed with SIGKILL after some reports, wherever it happens to be. Then: every
reported settlement (read before the kill or left in the pipe) is in the ledger exactly once
with the amount reported, at most one more per loop committed without being reported, the
balance equals the grant minus the settlements, and the holds the kill left open (one taken
for a request in flight, and whichever the loops had) are released by the sweeper once their
TTL has passed, at an injected time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from billing.ledger import Ledger
from billing.ledger_query import list_entries
from billing.ledger_tables import EntryKind
from server.db import Database
from tests.billing.ledger_fakes import assert_consistent

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ledger_worker.py")
ORG = "org_crash"
LOOPS = 4
REPORTS_BEFORE_KILL = 60


@pytest.mark.slow
async def test_sigkill_mid_burst_leaves_an_exact_ledger(db: Database) -> None:
    ledger = Ledger(db.sessions)
    await ledger.grant(ORG, 1_000_000_000, "grant")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        db.url,
        ORG,
        str(LOOPS),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdout is not None
    reported: list[dict[str, object]] = []
    try:
        while len(reported) < REPORTS_BEFORE_KILL:
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert line, f"the worker exited early with {await worker.wait()}"
            reported.append(json.loads(line))
    finally:
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
    # Reports the worker wrote before the kill but this test had not read yet are reports too
    # (on a loaded machine the reader lags); a line cut by the kill is not.
    unread = await worker.stdout.read()
    reported += [json.loads(line) for line in unread.split(b"\n")[:-1]]

    async with db.sessions() as session:
        entries = await list_entries(session, ORG)
    settles = {e.id: e for e in entries if e.kind is EntryKind.SETTLE}
    for report in reported:  # every settlement a "client" saw is charged, exactly as it was told
        assert settles[str(report["settle"])].amount == report["charged"]
    assert len({e.hold_id for e in settles.values()}) == len(settles)
    assert 0 <= len(settles) - len(reported) <= LOOPS
    balance = await assert_consistent(db, ledger, ORG)
    assert balance.balance == 1_000_000_000 - sum(e.amount for e in settles.values())
    closed = {e.hold_id for e in entries if e.kind in (EntryKind.SETTLE, EntryKind.RELEASE)}
    left_open = [e for e in entries if e.kind is EntryKind.HOLD and e.id not in closed]
    assert 1 <= len(left_open) == balance.open_holds <= LOOPS + 1  # the in-flight hold at least

    # The holds the kill left open expire: the sweeper releases them at their TTL, not before.
    expiries = sorted(e.expires_at for e in left_open if e.expires_at is not None)
    assert await ledger.release_expired(expiries[0] - timedelta(microseconds=1)) == []
    swept = await ledger.release_expired(expiries[-1])
    assert sorted(e.hold_id or "" for e in swept) == sorted(e.id for e in left_open)
    after = await assert_consistent(db, ledger, ORG)
    assert (after.balance, after.held, after.open_holds) == (balance.balance, 0, 0)
