"""kill -9 of the server in the middle of a burst of platform-paid requests, then a restart
(issue 14, second acceptance item), on each database.

The burst is arranged so that, at the moment of the kill, requests are in flight at every
stage, deterministically and without timing guesses:

- `a-*` were answered complete before the burst went on (streams through `[DONE]`);
- `b-*` hold credits and wait at the provider (a gate in front of the emulator), 40 of them;
- then the test takes the org's ledger lock itself (`ledger_locked`) and lets 20 of the `b-*`
  through: their provider answers in full, a stream's client receives every content chunk
  up to `finish_reason`, and then each waits for its settle, which cannot commit;
- `c-*` arrive after that and wait for their hold.

Then SIGKILL. Because no settle can commit while the test holds the lock, a response that
reached its client complete during that time would be one charged for nothing: the test
would see it. Then: every response received complete is charged exactly once, the cost it
carried; nothing else is charged; the 40 holds of `b-*` are open and the sweeper, driven
with an injected clock, releases them at their TTL and not before; the `c-*` wrote nothing;
the restarted server charges new requests as before; and the balance is the grant minus
the costs the clients saw.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from billing.ledger import Ledger
from billing.ledger_sweeper import HoldSweeper
from billing.ledger_tables import EntryKind
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
    kinds,
    ledger_locked,
    seed,
    server_env,
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
                contents_done = asyncio.Event()
                finished: list[str] = []

                def on_finish(rid: str) -> None:
                    finished.append(rid)
                    if len(finished) == LET_THROUGH // 2:
                        contents_done.set()

                waiting = [
                    asyncio.create_task(
                        chat(http, f"b-{i}", stream=i % 2 == 1, on_finish=lambda i=i: on_finish(f"b-{i}"))
                    )
                    for i in range(WAITING)
                ]
                await asyncio.to_thread(gate.wait_until, waiting=WAITING)  # all 40 holds committed
                async with ledger_locked(db, org_id):
                    through = (
                        gate.waiting(stream=True)[: LET_THROUGH // 2]
                        + gate.waiting(stream=False)[: LET_THROUGH // 2]
                    )
                    gate.let_through(through)
                    late = [asyncio.create_task(chat(http, f"c-{i}", stream=i % 2 == 1)) for i in range(LATE)]
                    await asyncio.to_thread(gate.wait_until, finished=ANSWERED + LET_THROUGH)
                    await asyncio.wait_for(contents_done.wait(), 30)
                    await server.kill()
                cut: list[Outcome] = [*await asyncio.gather(*waiting), *await asyncio.gather(*late)]
            gate.open_all()
            entries, by_request = await entries_by_request(db, org_id)
            balance = await assert_consistent(db, ledger, org_id)
            # Restarted on the same database: it serves and charges as before.
            async with Served(env, tmp_path / "server.log") as server, _client(server.url, key) as http:
                after = await asyncio.gather(*(chat(http, f"d-{i}", stream=i % 2 == 1) for i in range(4)))
        finally:
            gate.open_all()  # the gated emulator requests end (their server is gone)

    # Nothing in flight at the kill reached its client complete.
    assert not any(o.complete for o in cut), [o for o in cut if o.complete]
    assert sorted(finished) == sorted(o.request_id for o in cut if o.finished)
    assert len(finished) == LET_THROUGH // 2  # streams that got all their content, then no end

    # At the restart: what the killed server left.
    seen = {o.request_id: o.cost for o in answered}
    for rid, cost in seen.items():  # charged once, exactly what the client was told
        mine = by_request.pop(rid)
        assert kinds(mine) == [EntryKind.HOLD, EntryKind.SETTLE], mine
        [settle] = [e for e in mine if e.kind is EntryKind.SETTLE]
        assert settle.amount == cost
    left_open = [e for rid, mine in by_request.items() for e in mine]
    assert sorted(by_request) == sorted(f"b-{i}" for i in range(WAITING))  # the `c-*` wrote nothing
    assert all(kinds(mine) == [EntryKind.HOLD] for mine in by_request.values())
    assert balance.balance == GRANT - sum(c or 0 for c in seen.values())
    assert balance.open_holds == WAITING and balance.held == sum(e.amount for e in left_open)

    assert all(o.complete for o in after), after
    seen |= {o.request_id: o.cost for o in after}
    assert (await ledger.balance(org_id)).open_holds == WAITING  # they wait for their TTL

    expiries = sorted(e.expires_at for e in left_open if e.expires_at is not None)
    assert len(expiries) == WAITING
    early = HoldSweeper(ledger, interval=60, clock=lambda: expiries[0] - timedelta(microseconds=1))
    assert await early.sweep() == []
    due = HoldSweeper(ledger, interval=60, clock=lambda: expiries[-1])
    swept = await due.sweep()
    assert sorted(e.hold_id or "" for e in swept) == sorted(e.id for e in left_open)
    assert await due.sweep() == []

    entries, by_request = await entries_by_request(db, org_id)
    for rid, cost in seen.items():
        [settle] = [e for e in by_request[rid] if e.kind is EntryKind.SETTLE]
        assert settle.amount == cost
    settles = [e for e in entries if e.kind is EntryKind.SETTLE]
    assert len(settles) == len(seen)
    final = await assert_consistent(db, ledger, org_id)
    assert (final.balance, final.held, final.open_holds) == (GRANT - sum(c or 0 for c in seen.values()), 0, 0)
