"""kill -9 of one of two replicas in the middle of streaming chat, then its restart
(issue 19, fault suite; docs/reliability.md#a-replica-killed-mid-stream).

Two `patchbay serve` processes share a fresh PostgreSQL database and a private Redis, and serve
one platform-paid org (tests/server/v1/platform_billing.py). A client on each replica is in the
middle of a slow stream (it has read its first content chunk) when replica A gets SIGKILL. Then:
B's client reads its stream to `[DONE]`, charged, and B serves new requests; A, restarted on
the same data directory, replays its journal and serves; the killed process's lease is released
by a sweeper once its TTL has passed (no hold stays open); every response received complete is
charged exactly once and has exactly one usage row; the cut stream is charged nothing and has
no row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from billing.ledger import Ledger
from billing.ledger_tables import EntryKind
from billing.money import parse_usd
from server.db import Database
from tests.billing.ledger_fakes import assert_consistent
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.private_services import PrivateRedis
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.platform_billing import (
    PLATFORM_KEY,
    Outcome,
    Served,
    chat,
    chat_body,
    entries_by_request,
    no_open_holds,
    seed,
    server_env,
    usage_by_request,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
GRANT = 10_000_000
HOLD_TTL_SECONDS = 10
"""The smallest allowed: the killed process's lease must be released within the test."""
BOUND = 90.0
"""A bound on a hang only; every wait ends as soon as its condition holds."""
SLOW = text(" ".join(["word"] * 60), prompt_tokens=20, completion_tokens=60, chunk_delay=0.05)


def _client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60)


async def _stream(http: httpx.AsyncClient, rid: str, started: asyncio.Event) -> Outcome:
    """A streamed chat that signals `started` at its first content chunk; a cut is an outcome."""
    out = Outcome(rid, stream=True)
    try:
        async with http.stream(
            "POST", "/v1/chat/completions", json=chat_body(True), headers={"x-request-id": rid}
        ) as response:
            out.status = response.status_code
            cost = None
            async for line in response.aiter_lines():
                if line.startswith('data: {"id"') and '"content":"' in line:
                    started.set()
                elif line.startswith(": x-patchbay-cost "):
                    cost = parse_usd(line.split()[-1])
                elif line == "data: [DONE]":
                    out.cost = cost
    except httpx.TransportError:
        pass
    finally:
        started.set()
    return out


async def test_sigkill_of_a_replica_mid_stream(
    replica_database: Database, tmp_path: Path, private_redis_server: PrivateRedis
) -> None:
    db, redis_server = replica_database, private_redis_server
    upstream = OpenAIEmulator("openai", api_key=PLATFORM_KEY, models=("gpt-4o-mini",))
    upstream.always(SLOW)
    ledger = Ledger(db.sessions)
    with ServedApp(upstream) as emulator:
        org_id, key = await seed(db, tmp_path, emulator.url + "/v1")
        await ledger.grant(org_id, GRANT, "grant-1")
        base = server_env(db.url, tmp_path, hold_ttl_seconds=HOLD_TTL_SECONDS)
        base |= {"PATCHBAY_REDIS_URL": redis_server.url, "PATCHBAY_ADMIN_TOKEN": ADMIN_TOKEN}
        env_a = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "a")}
        env_b = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "b")}
        async with Served(env_b, tmp_path / "b.log") as b, _client(b.url, key) as on_b:
            async with Served(env_a, tmp_path / "a.log") as a, _client(a.url, key) as on_a:
                before = [await chat(on_a, "a-0", stream=False), await chat(on_b, "b-0", stream=False)]
                started_a, started_b = asyncio.Event(), asyncio.Event()
                cut = asyncio.create_task(_stream(on_a, "a-cut", started_a))
                kept = asyncio.create_task(_stream(on_b, "b-kept", started_b))
                await asyncio.wait_for(asyncio.gather(started_a.wait(), started_b.wait()), BOUND)
                await a.kill()
                during = await chat(on_b, "b-during", stream=True)
                outcomes = [*before, await cut, await kept, during]
            async with Served(env_a, tmp_path / "a.log") as again, _client(again.url, key) as on_a:
                outcomes.append(await chat(on_a, "a-after", stream=True))
                await no_open_holds(again.url, org_id, ADMIN_TOKEN)
                await again.stop()
            await b.stop()

    received = {o.request_id: o.cost for o in outcomes if o.complete}
    assert set(received) == {"a-0", "b-0", "b-kept", "b-during", "a-after"}, outcomes
    await assert_consistent(db, ledger, org_id)
    _, by_request = await entries_by_request(db, org_id)
    for rid, cost in received.items():
        [settle] = by_request.pop(rid)
        assert settle.kind is EntryKind.SETTLE and settle.amount == cost
    assert "a-cut" not in by_request  # the stream cut by the kill is charged nothing
    # Usage rows too: `a-0`, served by A just before the kill, has its row although usage rows are
    # written behind (each is journaled before its response ends; the restarted A replayed it).
    assert await usage_by_request(db, org_id) == dict.fromkeys(received, 1)
    await db.dispose()
