"""Issue 15's replica acceptance, for real: a subscription moving an org starter -> pro ->
cancelled changes its routing on every replica within seconds and never deletes a connection.

Two `patchbay serve` processes on loopback ports share one PostgreSQL database and one Redis;
the Stripe emulator and the OpenAI emulator run in this process. Each Stripe event is delivered,
signed as Stripe signs it, to replica A only; the test then asks replica B for chat completions
until its route trace (`x-patchbay-route`) shows the new tier's routing, with a deadline of a
few seconds. Replica A announces each change on the Redis config channel (watched here), which
is how B drops its snapshot at once; B's config poll would carry it too, a couple of seconds later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server.services import REDIS_PREFIX
from tests.conftest import REDIS_URL
from tests.emulators.stripe_emulator import SECRET_KEY, WEBHOOK_SECRET, StripeEmulator
from tests.replicas import replica_env, replicas_running
from tests.server.conftest import ADMIN_TOKEN
from tests.server.payments.conftest import TIER_PRICES, WEBHOOK
from tests.server.v1.conftest import OPENAI_KEY, Upstreams

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "default", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
CONVERGE_SECONDS = 5.0
"""How long replica B may take to route by a tier set through replica A ("within seconds")."""

PRIVATE = "openai_compatible:mylab/gpt-4o-mini"
BYOK = "openai:default/gpt-4o-mini"
PLATFORM = "openai:platform/gpt-4o-mini"
ROUTES = {
    "free": f"{PRIVATE}=skipped:tier:private;{BYOK}=skipped:tier:byok;{PLATFORM}=served",
    "starter": f"{PRIVATE}=skipped:tier:private;{BYOK}=served",
    "pro": f"{PRIVATE}=served",
}
"""The route trace (`x-patchbay-route`) each tier gives. On `free` the org's openai key and the
platform's are one provider's profiles rotated by least recent use, so the refused BYOK profile
shows before the platform's or, when it was used more recently (on `starter`), not at all: the
trace stops at the served one. `_routes_as` allows for that."""


def _routes_as(seen: str, expected: str) -> bool:
    """`seen` routes as `expected`: same first step, same served profile, no entry not expected."""
    got, want = seen.split(";"), expected.split(";")
    return got[0] == want[0] and got[-1] == want[-1] and set(got) <= set(want)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as served:
        yield served


@pytest.fixture
def replicas(
    tmp_path: Path, replica_db: str, redis_url: str, emulator: tuple[StripeEmulator, str]
) -> Iterator[tuple[str, str]]:
    env = replica_env(
        replica_db,
        redis_url,
        PATCHBAY_STRIPE_SECRET_KEY=SECRET_KEY,
        PATCHBAY_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        PATCHBAY_STRIPE_API_BASE=emulator[1],
        PATCHBAY_STRIPE_TIER_PRICES=TIER_PRICES,
    )
    # The database is migrated already: neither start has a migration to run (or to race on).
    with replicas_running(tmp_path, env, 2) as (a, b):
        yield a, b


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _seed(admin: httpx.AsyncClient, up: Upstreams) -> tuple[str, str]:
    """Through replica A's admin API: an org on `free` with a private endpoint `mylab` and its own
    openai key, a platform openai connection, credits, and the chat chain mylab, then openai."""
    price = {"input": "0.15", "output": "0.60"}
    await _ok(
        await admin.post(
            "/platform/connections",
            json={
                "provider": "openai",
                "base_url": up.openai_url,
                "key": OPENAI_KEY,
                "models": [{"id": "gpt-4o-mini", "price": price}],
            },
        ),
        201,
    )
    org = (await _ok(await admin.post("/orgs", json={"name": "acme", "tier": "free"}), 201))["id"]
    connections = (
        {"provider": "openai", "base_url": up.openai_url, "key": OPENAI_KEY},
        {
            "provider": "openai_compatible",
            "name": "mylab",
            "base_url": up.openai_url,
            "key": OPENAI_KEY,
            "models": ["gpt-4o-mini"],
        },
    )
    for body in connections:
        await _ok(await admin.post(f"/orgs/{org}/connections", json=body), 201)
    chains = {"chat": ["mylab/gpt-4o-mini", "openai/gpt-4o-mini"]}
    await _ok(await admin.put(f"/orgs/{org}/routing", json={"chains": chains}))
    await _ok(
        await admin.post(
            f"/orgs/{org}/billing/grants",
            json={"amount": "10", "reason": "test"},
            headers={"idempotency-key": f"grant-{org}"},
        ),
        201,
    )
    key = (await _ok(await admin.post(f"/orgs/{org}/api-keys", json={"name": "app"}), 201))["key"]
    return str(org), str(key)


async def _connections(admin: httpx.AsyncClient, org: str) -> list[tuple[str, str, str]]:
    listed = await _ok(await admin.get(f"/orgs/{org}/connections"))
    rows = listed["data"] if isinstance(listed, dict) else listed
    return sorted((c["id"], c["provider"], c["status"]) for c in rows)


async def _tier(admin: httpx.AsyncClient, org: str) -> str:
    listed = await _ok(await admin.get("/orgs"))
    rows = listed["data"] if isinstance(listed, dict) else listed
    return str(next(o["tier"] for o in rows if o["id"] == org))


async def _route_becomes(chat: httpx.AsyncClient, expected: str) -> list[str]:
    """Ask for chat completions until the route trace is `expected`; the traces seen on the way.
    Bounded polling of the replica's answers (each one a real routed request)."""
    seen: list[str] = []
    deadline = time.monotonic() + CONVERGE_SECONDS
    while True:
        answer = await chat.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text
        seen.append(answer.headers["x-patchbay-route"])
        if _routes_as(seen[-1], expected):
            return seen
        assert time.monotonic() < deadline, f"replica B still routes {seen[-1]!r}, not {expected!r}"
        await asyncio.sleep(0.05)  # the next poll of the observable, not a wait standing in for it


async def _announced(notices: Any, org: str) -> None:
    """Wait (bounded) until a config notice for `org` crosses the Redis channel."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    while time.monotonic() < deadline:
        message = await notices.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None and message["data"].decode().endswith(f":{org}"):
            return
    raise AssertionError(f"no config notice for {org} on the Redis channel")


async def test_a_subscription_reroutes_every_replica_within_seconds_and_deletes_nothing(
    replicas: tuple[str, str], emu: StripeEmulator, upstreams: Upstreams
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=f"{a}/admin/v1", headers=OPERATOR, timeout=10) as admin_a,
        httpx.AsyncClient(base_url=f"{b}/admin/v1", headers=OPERATOR, timeout=10) as admin_b,
        httpx.AsyncClient(base_url=a, timeout=10) as stripe_to_a,
        Redis.from_url(REDIS_URL) as redis,
        redis.pubsub() as notices,
    ):
        org, key = await _seed(admin_a, upstreams)
        before = await _connections(admin_b, org)
        assert sorted((p, s) for _, p, s in before) == [("openai", "active"), ("openai_compatible", "active")]
        await notices.subscribe(f"{REDIS_PREFIX}config")
        async with httpx.AsyncClient(
            base_url=b, headers={"authorization": f"Bearer {key}"}, timeout=10
        ) as chat_b:
            # B loads the org on `free` and keeps that snapshot in memory from now on.
            assert len(await _route_becomes(chat_b, ROUTES["free"])) == 1

            made = await _ok(
                await admin_a.post(
                    f"/orgs/{org}/billing/checkout", json={"kind": "subscription", "tier": "starter"}
                )
            )
            _, created = emu.complete(made["id"])
            sub = emu.sessions[made["id"]]["subscription"]
            # Each change happens in Stripe just before its delivery (the webhook re-reads the subscription).
            steps = (
                ("starter", lambda: created),
                ("pro", lambda: emu.change_plan(sub, "price_pro")),
                ("free", lambda: emu.cancel(sub)),  # cancelled: the fallback tier
            )
            for tier, step in steps:
                delivered = await emu.deliver(stripe_to_a, WEBHOOK, step())
                assert (await _ok(delivered))["outcome"] == f"tier {tier}"
                await _announced(notices, org)
                await _route_becomes(chat_b, ROUTES[tier])
                assert await _tier(admin_b, org) == tier
                assert await _connections(admin_b, org) == before  # nothing deleted or disabled
        # A's own snapshot moved too (its process dropped it when the webhook applied the change).
        async with httpx.AsyncClient(
            base_url=a, headers={"authorization": f"Bearer {key}"}, timeout=10
        ) as chat_a:
            assert len(await _route_becomes(chat_a, ROUTES["free"])) == 1
