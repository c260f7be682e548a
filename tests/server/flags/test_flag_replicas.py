"""Issue 18's flag acceptance, for real: a flag flipped for a canary org changes that org's
routing, and no other org's, on two `patchbay serve` processes sharing PostgreSQL and Redis;
the kill switch then restores the path without the feature on both, within seconds.

Every flag write goes to replica A's admin API; the test asks both replicas for chat completions
(each a real routed request against the OpenAI emulator) until the route trace
(`x-patchbay-route`) shows the expected path, with a deadline of a few seconds. Both replicas
hold each org's snapshot in memory before each change, so only the config notice (or poll)
can move them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.replicas import replica_env, replicas_running
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import OPENAI_KEY, Upstreams

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "default", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
CONVERGE_SECONDS = 5.0
BYOK_ON = "openai:default/gpt-4o-mini=served"
BYOK_OFF = "openai:default/gpt-4o-mini=skipped:flag:byok;openai:platform/gpt-4o-mini=served"


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as served:
        yield served


@pytest.fixture
def replicas(tmp_path: Path, replica_db: str, redis_url: str) -> Iterator[tuple[str, str]]:
    with replicas_running(tmp_path, replica_env(replica_db, redis_url), 2) as (a, b):
        yield a, b


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _org(admin: httpx.AsyncClient, name: str, up: Upstreams) -> tuple[str, str]:
    """An org on `starter` (BYOK allowed) with its own openai key, credits and an API key."""
    org = (await _ok(await admin.post("/orgs", json={"name": name, "tier": "starter"}), 201))["id"]
    body = {"provider": "openai", "base_url": up.openai_url, "key": OPENAI_KEY}
    await _ok(await admin.post(f"/orgs/{org}/connections", json=body), 201)
    await _ok(await admin.put(f"/orgs/{org}/routing", json={"chains": {"chat": ["openai/gpt-4o-mini"]}}))
    grant = {"amount": "10", "reason": "test"}
    await _ok(
        await admin.post(
            f"/orgs/{org}/billing/grants", json=grant, headers={"idempotency-key": f"grant-{org}"}
        ),
        201,
    )
    key = (await _ok(await admin.post(f"/orgs/{org}/api-keys", json={"name": "app"}), 201))["key"]
    return str(org), str(key)


async def _routes_become(clients: dict[str, httpx.AsyncClient], expected: dict[str, str]) -> None:
    """Ask each (replica, org) client for chat completions until every route trace is the one
    expected; bounded polling of real routed answers, never a sleep standing in for a change."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    seen: dict[str, str] = {}
    while True:
        for label, client in clients.items():
            answer = await client.post("/v1/chat/completions", json=CHAT)
            assert answer.status_code == 200, answer.text
            seen[label] = answer.headers["x-patchbay-route"]
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"routes {seen!r}, expected {expected!r}"
        await asyncio.sleep(0.05)  # the next poll of the observable


async def test_a_canary_flag_moves_one_org_on_both_replicas_and_the_kill_switch_restores_it(
    replicas: tuple[str, str], upstreams: Upstreams
) -> None:
    a, b = replicas
    async with httpx.AsyncClient(base_url=f"{a}/admin/v1", headers=OPERATOR, timeout=10) as admin:
        platform = {
            "provider": "openai",
            "base_url": upstreams.openai_url,
            "key": OPENAI_KEY,
            "models": [{"id": "gpt-4o-mini", "price": {"input": "0.15", "output": "0.60"}}],
        }
        await _ok(await admin.post("/platform/connections", json=platform), 201)
        canary, canary_key = await _org(admin, "canary", upstreams)
        _, other_key = await _org(admin, "other", upstreams)
        clients = {
            f"{replica}/{org}": httpx.AsyncClient(
                base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=10
            )
            for replica, base in (("A", a), ("B", b))
            for org, key in (("canary", canary_key), ("other", other_key))
        }
        try:

            def routes(canary_route: str, other_route: str) -> dict[str, str]:
                return {
                    label: canary_route if label.endswith("/canary") else other_route for label in clients
                }

            # Nothing stored: `byok` is at its default (on) for both orgs on both replicas, and
            # each replica now holds both snapshots in memory.
            await _routes_become(clients, routes(BYOK_ON, BYOK_ON))
            # Rolled out to 0%: off everywhere.
            await _ok(await admin.put("/flags/byok", json={"percent": 0}))
            await _routes_become(clients, routes(BYOK_OFF, BYOK_OFF))
            # The canary org gets it back; the other org does not move, on either replica.
            flag = await _ok(await admin.post("/flags/byok/canary", json={"add": ["canary"]}))
            assert flag["canary"] == [canary]
            await _routes_become(clients, routes(BYOK_ON, BYOK_OFF))
            # The kill switch: the path without the feature, on both replicas, for every org.
            assert (await _ok(await admin.post("/flags/byok/kill", json={"killed": True})))["killed"]
            await _routes_become(clients, routes(BYOK_OFF, BYOK_OFF))
            # Released: the canary rollout applies again.
            await _ok(await admin.post("/flags/byok/kill", json={"killed": False}))
            await _routes_become(clients, routes(BYOK_ON, BYOK_OFF))
        finally:
            for client in clients.values():
                await client.aclose()
