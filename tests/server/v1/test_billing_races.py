"""200 concurrent platform-paid chat requests for one org, through a real server process, on
each database, with credits that cover only some of them (issue 14, first acceptance item).

What must hold whatever the interleaving: every answer is a 200 charged exactly what its
`x-patchbay-cost` says (header or stream trailer), or a 402 `insufficient_credits` that wrote
nothing and never reached the provider; the balance never goes below zero (no settle falls
short) and ends at grants − Σ costs the clients were told; every hold is closed once, no key
is used twice, and replaying every key (the grant through the CLI, the request path's holds
and settles through the ledger) changes nothing. The usage records carry the same costs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from billing.ledger import Ledger
from billing.ledger_tables import EntryKind
from billing.money import format_usd
from billing.tables import UsageRecord
from server.db import Database
from tests.billing.ledger_fakes import assert_consistent
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.server.v1.platform_billing import (
    PLATFORM_KEY,
    Served,
    chat,
    cli,
    entries_by_request,
    kinds,
    replay_every_key,
    seed,
    server_env,
)

REQUESTS = 200
GRANT = 40_000
"""0.04 USD. Each request holds about 2,300 micro-USD and is charged 253 to 481 (20 input
tokens, 100 to 199 output, at 1/2 USD per 1M and the `pro` markup): all 200 would cost at least
50,600, so some must be refused, and the first hold always fits, so some are served."""


@pytest.mark.slow
async def test_a_burst_of_platform_paid_requests_is_charged_exactly(db: Database, tmp_path: Path) -> None:
    upstream = OpenAIEmulator("openai", api_key=PLATFORM_KEY, models=("gpt-4o-mini",))
    upstream.enqueue(
        *(text("Hello there.", prompt_tokens=20, completion_tokens=100 + i % 100) for i in range(REQUESTS))
    )
    with ServedApp(upstream) as emulator:
        org_id, key = await seed(db, tmp_path, emulator.url + "/v1")
        env = server_env(db.url, tmp_path, hold_ttl_seconds=900)
        granted = await cli(
            env,
            "credits",
            "grant",
            "--org",
            org_id,
            "--amount",
            format_usd(GRANT),
            "--idempotency-key",
            "grant-1",
        )
        assert granted["entry"]["amount_micro_usd"] == GRANT and granted["replayed"] is False

        async with Served(env, tmp_path / "server.log") as server:
            limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
            headers = {"authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, limits=limits, timeout=60
            ) as http:
                outcomes = await asyncio.gather(
                    *(chat(http, f"burst-{i:03d}", stream=i % 2 == 1) for i in range(REQUESTS))
                )
            await server.stop()  # cleanly: the usage records are written behind, flushed on shutdown

    served = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 402]
    assert len(served) + len(refused) == REQUESTS, [(o.status, o.code) for o in outcomes]
    assert served and refused
    assert all(o.complete and o.cost and o.cost > 0 for o in served)
    assert {o.code for o in refused} == {"insufficient_credits"}
    assert {o.stream for o in served} == {o.stream for o in refused} == {True, False}
    assert len(upstream.chat_requests) == len(served)  # a 402 never reached the provider

    ledger = Ledger(db.sessions)
    entries, by_request = await entries_by_request(db, org_id)
    for o in refused:  # refused before anything was written
        assert o.request_id not in by_request
    for o in served:  # one hold, closed by one settle of exactly the cost the client was told
        mine = by_request.pop(o.request_id)
        assert kinds(mine) == [EntryKind.HOLD, EntryKind.SETTLE], mine
        hold, settle = sorted(mine, key=lambda e: e.kind is EntryKind.SETTLE)
        assert settle.hold_id == hold.id and settle.amount == o.cost and settle.shortfall == 0
    assert by_request == {}
    assert len({e.idempotency_key for e in entries}) == len(entries)
    [grant] = [e for e in entries if e.kind is EntryKind.GRANT]

    charged = sum(o.cost or 0 for o in served)
    balance = await assert_consistent(db, ledger, org_id)
    assert (balance.balance, balance.held, balance.open_holds) == (GRANT - charged, 0, 0)

    async with db.sessions() as session:
        recorded = (
            await session.scalars(select(UsageRecord.cost_micro_usd).where(UsageRecord.org_id == org_id))
        ).all()
    assert sorted(recorded) == sorted(o.cost for o in served)

    # Replays change nothing: the grant through the CLI, every other key through the ledger.
    again = await cli(
        env,
        "credits",
        "grant",
        "--org",
        org_id,
        "--amount",
        format_usd(GRANT),
        "--idempotency-key",
        "grant-1",
    )
    assert again["replayed"] is True and again["entry"]["id"] == grant.id
    await replay_every_key(ledger, [e for e in entries if e.kind is not EntryKind.GRANT])
    after, _ = await entries_by_request(db, org_id)
    assert [e.id for e in after] == [e.id for e in entries]
    assert await assert_consistent(db, ledger, org_id) == balance
