"""Issue 19's replica acceptance, for real: PostgreSQL, Redis, Debian's nginx and two `patchbay serve`
replicas on loopback, and what a client sees is the same whichever replica answers.

One module-scoped cluster (tests/server/replica_cluster.py) serves every test; nginx runs
deploy/nginx/patchbay.conf, plus an `x-patchbay-upstream` header naming the replica that
answered. Each test makes its own org and API key, so the tests share processes, not state; a
test that kills a replica leaves it to the `whole` fixture to start it again before the next
test. Tests that must show "both replicas" ask each replica directly as well as through nginx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
import websockets

from server.db import Database
from server.realtime.endpoint import REPLACED_REASON
from tests.emulators.openai import text
from tests.nginx_front import UPSTREAM_HEADER
from tests.server.metrics_text import samples, value
from tests.server.replica_cluster import (
    CHAT,
    OPERATOR,
    PLATFORM_MODEL,
    Cluster,
    admin_api,
    api,
    cluster_running,
    make_org,
    ok,
    route,
)
from tests.server.v1.conftest import OPENAI_KEY
from tests.server.v1.platform_billing import chat, entries_by_request

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RATE_LIMIT = 60
"""Requests per API key; refilled over a day, so no token comes back while a test runs."""
SESSIONS_PER_KEY = 2
CONVERGE_SECONDS = 2.0
"""The issue's bound: a routing change made on one replica is served by the other within this."""
COOLDOWN_COPY_SECONDS = 60
"""Longer than any test: a replica learns of another's cooldown by its notice, not by the copy expiring."""
OPENAI = "openai:default/gpt-4o-mini"
MISTRAL = "mistral:default/mistral-small-latest"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster_running(
        tmp_path_factory.mktemp("cluster"),
        PATCHBAY_API_KEY_RATE_LIMIT=f"{RATE_LIMIT}/86400",
        PATCHBAY_VOICE_MAX_SESSIONS_PER_KEY=str(SESSIONS_PER_KEY),
        PATCHBAY_COOLDOWN_COPY_SECONDS=str(COOLDOWN_COPY_SECONDS),
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def whole(cluster: Cluster) -> Cluster:
    """Every replica running before each test (one a previous test killed is started again)."""
    for replica in cluster.replicas:
        if not replica.alive():
            replica.start()
            replica.wait_ready(time.monotonic() + 120)
    return cluster


async def _notices_applied(base: str) -> float:
    """The cooldown notices a replica has applied to its copy (`/metrics`)."""
    async with httpx.AsyncClient(base_url=base, headers=OPERATOR, timeout=10) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    return value(samples(answer.text), "patchbay_cooldown_notices_total")


async def test_a_429d_profile_is_skipped_by_both_replicas(cluster: Cluster) -> None:
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(
            admin,
            {"openai": cluster.limited_url, "mistral": cluster.mistral_url},
            ["openai/gpt-4o-mini", "mistral/mistral-small-latest"],
        )
    async with api(a, key) as via_a, api(b, key) as via_b, api(cluster.nginx, key) as via_nginx:
        # Replica B serves once from the profile, so it holds a copy of its healthy state (for
        # COOLDOWN_COPY_SECONDS: only a notice can tell B of the cooldown below).
        cluster.limited.enqueue(text("warm"))
        assert await route(via_b) == f"{OPENAI}=served"
        heard = await _notices_applied(b)
        # Replica A meets the 429 and falls back; the cooldown it records is in Redis, and the
        # notice of it was published before A answered.
        assert await route(via_a) == f"{OPENAI}=failed:rate_limit;{MISTRAL}=served"
        failed_at = time.monotonic()
        while await _notices_applied(b) == heard:  # B applies it as it arrives
            assert time.monotonic() - failed_at < 10, "replica B never applied A's cooldown notice"
            await asyncio.sleep(0.01)  # the next poll of the observable
        # Replica B never asks the limited profile: it skips it for the cooldown A recorded.
        skipped = f"{OPENAI}=skipped:cooldown:rate_limit;{MISTRAL}=served"
        assert await route(via_b) == skipped
        assert [await route(via_nginx) for _ in range(4)] == [skipped] * 4
        assert await route(via_a) == skipped
    assert len(cluster.limited.chat_requests) == 2  # B's warm-up and A's 429


async def test_a_per_key_rate_limit_holds_across_both_replicas(cluster: Cluster) -> None:
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(admin, {}, [])
    async with api(a, key) as via_a, api(b, key) as via_b, api(cluster.nginx, key) as via_nginx:
        # One bucket of RATE_LIMIT for the key, drawn on by both replicas at once: exactly that
        # many pass (each replica alone would pass RATE_LIMIT of its own).
        clients = [via_a, via_b] * (RATE_LIMIT // 2 + 5)
        answers = await asyncio.gather(*(c.get("/v1/models") for c in clients))
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == RATE_LIMIT and statuses.count(429) == len(clients) - RATE_LIMIT
        served_by = {str(r.request.url.port) for r in answers if r.status_code == 200}
        assert len(served_by) == 2  # both replicas took from the one bucket
        for client in (via_a, via_b, via_nginx):
            refused = await client.get("/v1/models")
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"


async def test_a_routing_change_on_one_replica_is_served_by_the_other_within_2_s(cluster: Cluster) -> None:
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(a) as admin_a:
        org, key = await make_org(
            admin_a, {"openai": cluster.openai_url, "mistral": cluster.mistral_url}, ["openai/gpt-4o-mini"]
        )
        async with api(b, key) as via_b:
            # B holds the org's snapshot in memory: only a notice (or its poll) can move it.
            assert await route(via_b) == f"{OPENAI}=served"
            changed_at = time.monotonic()
            chains = {"chat": ["mistral/mistral-small-latest"]}
            await ok(await admin_a.put(f"/orgs/{org}/routing", json={"chains": chains}))
            seen = []
            while True:
                seen.append(await route(via_b))
                if seen[-1] == f"{MISTRAL}=served":
                    break
                assert time.monotonic() - changed_at < CONVERGE_SECONDS, (
                    f"replica B still routes {seen[-1]!r} {CONVERGE_SECONDS} s after the change on A"
                )
                await asyncio.sleep(0.05)  # the next poll of the observable, not a wait standing in for it
    async with api(cluster.nginx, key) as via_nginx:
        assert {await route(via_nginx) for _ in range(4)} == {f"{MISTRAL}=served"}


def _ws(base: str, query: str, key: str | None = None) -> websockets.connect:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return websockets.connect(
        f"{base.replace('http://', 'ws://')}/v1/realtime?{query}", additional_headers=headers
    )


async def _created(ws: websockets.ClientConnection) -> None:
    assert orjson.loads(await ws.recv())["type"] == "session.created"


async def test_a_realtime_token_from_one_replica_opens_a_session_on_the_other_and_through_nginx(
    cluster: Cluster,
) -> None:
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(admin, {}, [])
    async with api(a, key) as via_a:
        minted = await via_a.post(
            "/v1/realtime/client_secrets", json={"session": {"type": "realtime", "model": "default"}}
        )
    token = (await ok(minted))["value"]
    # Minted on A, signed with the shared PATCHBAY_VOICE_TOKEN_SECRET: B accepts it, and nginx
    # passes the WebSocket upgrade to whichever replica it picks.
    async with _ws(b, f"token={token}") as on_b, _ws(cluster.nginx, f"token={token}") as via_nginx:
        await _created(on_b)
        await _created(via_nginx)


async def test_realtime_sessions_per_key_are_counted_across_both_replicas(cluster: Cluster) -> None:
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(admin, {}, [])
    # One session on each replica: each alone is under the limit of 2; together they are at it.
    async with _ws(a, "model=default", key) as on_a, _ws(b, "model=default", key) as on_b:
        await _created(on_a)
        await _created(on_b)
        for base in (a, b, cluster.nginx):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with _ws(base, "model=default", key):
                    pass
            assert refused.value.response.status_code == 403


async def test_a_reconnection_on_one_replica_replaces_the_session_it_names_on_the_other(
    cluster: Cluster,
) -> None:
    """At the key's limit, a client that lost its session on A (without A noticing) reconnects to
    B naming it: B frees its slot in Redis, and A, told on the notice channel, ends it."""
    a, b = (r.url for r in cluster.replicas)
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(admin, {}, [])
    async with _ws(a, "model=default", key) as lost, _ws(b, "model=default", key) as other:
        lost_id = orjson.loads(await lost.recv())["session"]["id"]
        await _created(other)
        async with _ws(b, f"model=default&replaces={lost_id}", key) as again:
            await _created(again)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await lost.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, REPLACED_REASON)
            # The key is at its limit again, with B's two sessions.
            with pytest.raises(websockets.InvalidStatus):
                async with _ws(a, "model=default", key):
                    pass


async def _balance(base: str, org: str) -> int:
    async with admin_api(base) as admin:
        return int((await ok(await admin.get(f"/orgs/{org}/billing/balance")))["balance_micro_usd"])


async def test_a_platform_billed_burst_split_across_both_replicas_leaves_the_exact_balance(
    cluster: Cluster,
) -> None:
    grant = 10_000_000
    cluster.openai.always(
        text("Hello there, how are you?", prompt_tokens=20, completion_tokens=150), model=PLATFORM_MODEL
    )
    bases = [r.url for r in cluster.replicas]
    async with admin_api(cluster.nginx) as admin:
        platform = {
            "provider": "openai",
            "base_url": cluster.openai_url,
            "key": OPENAI_KEY,
            "models": [{"id": PLATFORM_MODEL, "price": {"input": "1", "output": "2"}}],
        }
        await ok(await admin.post("/platform/connections", json=platform), 201)
        org, key = await make_org(admin, {}, [f"openai/{PLATFORM_MODEL}"])
        grant_body = {"amount": "10", "reason": "test"}
        headers = {"idempotency-key": f"grant-{org}"}
        await ok(await admin.post(f"/orgs/{org}/billing/grants", json=grant_body, headers=headers), 201)
    async with (
        api(bases[0], key) as via_a,
        api(bases[1], key) as via_b,
        api(cluster.nginx, key) as via_nginx,
    ):
        burst = [
            chat(client, f"burst-{n}-{i}", stream=i % 2 == 1, model=f"openai/{PLATFORM_MODEL}")
            for n, client in enumerate((via_a, via_b, via_nginx))
            for i in range(8)
        ]
        outcomes = await asyncio.gather(*burst)
    assert all(o.complete for o in outcomes), [o for o in outcomes if not o.complete]
    spent = sum(o.cost or 0 for o in outcomes)
    assert spent > 0
    # Each replica settles into its journal before the response ends and writes it into the
    # ledger behind (every 0.2 s): poll until both replicas report the balance, bounded.
    deadline = time.monotonic() + 10
    while (seen := [await _balance(base, org) for base in bases]) != [grant - spent] * 2:
        assert time.monotonic() < deadline, f"balances {seen}, expected {grant - spent}"
        await asyncio.sleep(0.1)  # the next poll of the observable
    db = Database(cluster.db_url)
    try:
        _, by_request = await entries_by_request(db, org)
    finally:
        await db.dispose()
    # Every response charged once, exactly the cost it carried; nothing else charged.
    assert {rid: [e.amount for e in entries] for rid, entries in by_request.items()} == {
        o.request_id: [o.cost] for o in outcomes
    }


@dataclass
class Stream:
    upstream: str = ""
    started: asyncio.Event | None = None
    done: bool = False
    error: str | None = None


async def _stream(client: httpx.AsyncClient, out: Stream) -> Stream:
    """One chat stream through nginx: which replica answered, and whether it reached [DONE]."""
    assert out.started is not None
    body = {**CHAT, "stream": True}
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200, await response.aread()
            out.upstream = response.headers[UPSTREAM_HEADER]
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    out.started.set()
                out.done = out.done or line == "data: [DONE]"
    except httpx.TransportError as exc:
        out.error = type(exc).__name__
    finally:
        out.started.set()
    return out


async def test_killing_one_replica_mid_load_fails_only_its_own_in_flight_streams(cluster: Cluster) -> None:
    killed, kept = cluster.replicas
    async with admin_api(cluster.nginx) as admin:
        _, key = await make_org(admin, {"openai": cluster.valve_url}, ["openai/gpt-4o-mini"])
    valve = cluster.valve
    valve.holding = True
    try:
        async with api(cluster.nginx, key) as via_nginx:
            streams = [Stream(started=asyncio.Event()) for _ in range(8)]
            tasks = [asyncio.create_task(_stream(via_nginx, s)) for s in streams]
            # Every stream has its first chunk and waits, mid-body, at the provider.
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams if s.started)), 30)
            assert valve.held == len(streams) and not any(s.error or s.done for s in streams), streams
            ports = {s.upstream.rsplit(":", 1)[-1] for s in streams}
            assert ports == {str(killed.port), str(kept.port)}, ports  # nginx spread them over both
            killed.kill()  # SIGKILL, mid-stream
            valve.open()
            ended = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            on_killed = [s for s in ended if s.upstream.endswith(f":{killed.port}")]
            on_kept = [s for s in ended if s.upstream.endswith(f":{kept.port}")]
            assert on_killed and all(s.error and not s.done for s in on_killed), on_killed
            assert on_kept and all(s.done and s.error is None for s in on_kept), on_kept
            # What the operator sees: nginx logs the cut streams of the replica that died.
            assert "upstream prematurely closed connection" in cluster.nginx_log.read_text()
            # New requests keep being served, by the replica left.
            after = [await via_nginx.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
            assert [r.status_code for r in after] == [200] * 3
            assert {r.headers[UPSTREAM_HEADER].rsplit(", ", 1)[-1] for r in after} == {
                f"127.0.0.1:{kept.port}"
            }
    finally:
        valve.holding = False
        valve.open()
