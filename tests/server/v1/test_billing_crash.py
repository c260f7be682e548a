"""kill -9 of the server in the middle of a burst of platform-paid requests, then a restart
(issue 14, second acceptance item), on each database.

The server serves from a credit lease (billing/lease.py): a segment's hold is a draw in memory,
its settle a line in the process's journal before the response completes, written into the
ledger behind. The burst is arranged so that, at the moment of the kill, requests are in
flight at every stage, deterministically and without timing guesses:

- `a-*` were answered complete before the burst went on (streams through `[DONE]`);
- `b-*` drew on the lease and wait at the provider (a gate in front of the emulator), 40;
- then the test takes the org's ledger lock itself (`ledger_locked`), so nothing the server
  journals can reach the ledger, and lets 20 of the `b-*` through: each is answered complete,
  its charge only in the journal;
- `c-*` arrive after that, draw on the lease and wait at the provider.

Then SIGKILL, the lock still held. The killed server's settles of the 20 are in no database,
only in its journal file (the page cache outlives the process), and so are their usage rows
(the lock holds those inserts back too); the restarted server replays both journals before
serving. Then: every response received complete is charged exactly once, the cost it carried,
and has exactly one usage row, with that cost; nothing else is charged or has a row; the killed server's lease (which held the credits of the
requests that never answered) stays open until its TTL and the sweeper, driven with an
injected clock, releases it then and not before; the restarted server charges new requests as
before; and the balance is the grant minus the costs the clients saw.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from billing.ledger import Ledger
from billing.ledger_sweeper import HoldSweeper
from billing.ledger_tables import EntryKind
from billing.tables import UsageRecord
from server.db import Database
from tests.billing.ledger_fakes import assert_consistent
from tests.emulators.gate import Gate
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.server.v1.platform_billing import (
    PLATFORM_KEY,
    Outcome,
    Served,
    chat,
    entries_by_request,
    ledger_locked,
    request_of,
    seed,
    server_env,
    usage_by_request,
)

GRANT = 10_000_000
HOLD_TTL_SECONDS = 300
"""Longer than the test, so the restarted server's own sweeper (real clock) releases nothing:
the test sweeps with a clock it sets."""
ANSWERED, WAITING, LET_THROUGH, LATE = 20, 40, 20, 20


def _client(url: str, key: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {key}"}, limits=limits, timeout=60
    )


async def _first_done(tasks: list[asyncio.Task[Outcome]], count: int) -> set[asyncio.Task[Outcome]]:
    done: set[asyncio.Task[Outcome]] = set()
    while len(done) < count:
        more, _ = await asyncio.wait(set(tasks) - done, return_when=asyncio.FIRST_COMPLETED)
        done |= more
    return done


@pytest.mark.slow
async def test_sigkill_mid_burst_charges_exactly_what_clients_received(db: Database, tmp_path: Path) -> None:
    upstream = OpenAIEmulator("openai", api_key=PLATFORM_KEY, models=("gpt-4o-mini",))
    upstream.always(text("Hello there, how are you?", prompt_tokens=20, completion_tokens=150))
    gate = Gate(upstream)
    ledger = Ledger(db.sessions)
    with ServedApp(gate) as emulator:
        try:
            org_id, key = await seed(db, tmp_path, emulator.url + "/v1")
            await ledger.grant(org_id, GRANT, "grant-1")
            env = server_env(db.url, tmp_path, hold_ttl_seconds=HOLD_TTL_SECONDS)
            async with Served(env, tmp_path / "server.log") as server, _client(server.url, key) as http:
                answered = await asyncio.gather(
                    *(chat(http, f"a-{i}", stream=i % 2 == 1) for i in range(ANSWERED))
                )
                assert all(o.complete for o in answered), answered

                gate.holding = True
                waiting = [
                    asyncio.create_task(chat(http, f"b-{i}", stream=i % 2 == 1)) for i in range(WAITING)
                ]
                await asyncio.to_thread(gate.wait_until, waiting=WAITING)  # all 40 drew on the lease
                async with ledger_locked(db, org_id, usage=True):
                    through = (
                        gate.waiting(stream=True)[: LET_THROUGH // 2]
                        + gate.waiting(stream=False)[: LET_THROUGH // 2]
                    )
                    gate.let_through(through)
                    late = [asyncio.create_task(chat(http, f"c-{i}", stream=i % 2 == 1)) for i in range(LATE)]
                    await asyncio.to_thread(
                        gate.wait_until, waiting=WAITING + LATE, finished=ANSWERED + LET_THROUGH
                    )
                    done = await _first_done(waiting, LET_THROUGH)  # the answered; the rest wait at the gate
                    before, _ = await entries_by_request(db, org_id)  # read: the lock is ours, not a write
                    usage_before = await usage_by_request(db, org_id)
                    await server.kill()
                received = [t.result() for t in done]
                cut: list[Outcome] = [
                    *await asyncio.gather(*(set(waiting) - done)),
                    *await asyncio.gather(*late),
                ]
            gate.open_all()
            balance = await assert_consistent(db, ledger, org_id)
            # Restarted on the same database and data directory: it replays the killed server's
            # journal before it serves, then serves and charges as before; stopped cleanly, it
            # writes its own journal and releases its lease.
            async with Served(env, tmp_path / "server.log") as server, _client(server.url, key) as http:
                after = await asyncio.gather(*(chat(http, f"d-{i}", stream=i % 2 == 1) for i in range(4)))
                await server.stop()
            entries, by_request = await entries_by_request(db, org_id)
            usage = await usage_by_request(db, org_id)
            async with db.sessions() as session:
                costs = await session.execute(select(UsageRecord.request_id, UsageRecord.cost_micro_usd))
                usage_costs = {rid: cost for rid, cost in costs}
        finally:
            gate.open_all()  # the gated emulator requests end (their server is gone)

    # At the kill: the 20 let through were received complete, charged in the journal only.
    assert all(o.complete for o in received) and len(received) == LET_THROUGH, received
    assert not any(o.complete for o in cut), [o for o in cut if o.complete]
    assert not {o.request_id for o in received} & {request_of(e) for e in before}
    assert not {o.request_id for o in received} & set(usage_before)  # their rows: only in the journal
    assert balance.balance >= GRANT - sum(o.cost or 0 for o in answered)

    # After the restart: every response received complete charged once, exactly what it said.
    seen = {o.request_id: o.cost for o in [*answered, *received, *after]}
    assert all(o.complete for o in after), after
    for rid, cost in seen.items():
        [settle] = by_request.pop(rid)
        assert settle.kind is EntryKind.SETTLE and settle.amount == cost and settle.shortfall == 0
    assert by_request == {}  # the `b-*` and `c-*` never answered wrote nothing
    settles = [e for e in entries if e.kind is EntryKind.SETTLE]
    assert len(settles) == len(seen)
    assert usage == dict.fromkeys(seen, 1)  # one usage row each, none for the `b-*` and `c-*`
    assert {rid: usage_costs[rid] for rid in seen} == seen
    left_open = [e for e in entries if e.kind is EntryKind.HOLD and e.id not in {c.hold_id for c in entries}]
    restarted = await assert_consistent(db, ledger, org_id)
    assert restarted.balance == GRANT - sum(c or 0 for c in seen.values())
    assert restarted.open_holds == len(left_open) >= 1  # the killed server's lease waits for its TTL
    assert all(e.details.get("lease") is True for e in left_open)

    expiries = sorted(e.expires_at for e in left_open if e.expires_at is not None)
    early = HoldSweeper(ledger, interval=60, clock=lambda: expiries[0] - timedelta(microseconds=1))
    assert await early.sweep() == []
    due = HoldSweeper(ledger, interval=60, clock=lambda: expiries[-1])
    swept = await due.sweep()
    assert sorted(e.hold_id or "" for e in swept) == sorted(e.id for e in left_open)
    assert await due.sweep() == []
    final = await assert_consistent(db, ledger, org_id)
    assert (final.balance, final.held, final.open_holds) == (GRANT - sum(c or 0 for c in seen.values()), 0, 0)
