"""Failed authentication on `/v1`, through the app: bad keys from one address are slowed, then
that address gets 429 `auth_failures_exceeded` with `retry-after` on every surface, in each
surface's error shape; other addresses are untouched, a valid key keeps working from the locked
address (docs/security.md, "Failed authentication"), and replicas sharing Redis count together.

The client's address is set on the ASGI transport (what uvicorn puts in `scope["client"]`); the
throttle runs on a clock and a sleep the test holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from server import accounts
from server.app import create_app
from server.auth_throttle import AuthThrottle
from server.auth_throttle_policy import ThrottlePolicy
from server.auth_throttle_store import FailureStore, InProcessFailureStore, RedisFailureStore
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from tests.server.throttle_fakes import Clock, Sleeps

POLICY = ThrottlePolicy(limit=10, window=60.0, lockout=300.0)
ATTACKER = "203.0.113.66"
HOLDER = "198.51.100.7"
BAD = "pb-" + "0" * 43


@asynccontextmanager
async def serving(
    settings: Settings, db: Database, store: FailureStore, sleeps: Sleeps
) -> AsyncIterator[FastAPI]:
    throttle = AuthThrottle(POLICY, store, sleep=sleeps)
    app = create_app(settings, services=Services.build(settings, db, Overrides(auth_throttle=throttle)))
    async with app.router.lifespan_context(app):
        yield app


def from_address(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://patchbay.test")


async def issue_key(db: Database) -> str:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        return (await accounts.create_api_key(s, org.id, name="holder")).key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def app(settings: Settings, db: Database, clock: Clock, sleeps: Sleeps) -> AsyncIterator[FastAPI]:
    async with serving(settings, db, InProcessFailureStore(POLICY, clock=clock), sleeps) as application:
        yield application


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        opened: dict[str, httpx.AsyncClient] = {}

        def client(address: str) -> httpx.AsyncClient:
            if address not in opened:
                opened[address] = from_address(app, address)
                stack.push_async_callback(opened[address].aclose)
            return opened[address]

        yield client


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def chat(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        headers=bearer(key),
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )


async def test_bad_keys_are_slowed_then_the_address_is_locked_out_everywhere(
    clients: Callable[[str], httpx.AsyncClient], db: Database, sleeps: Sleeps
) -> None:
    key = await issue_key(db)
    attacker = clients(ATTACKER)
    refused = [await chat(attacker, BAD) for _ in range(9)]
    assert [r.status_code for r in refused] == [401] * 9
    assert refused[-1].json()["error"]["code"] == "invalid_api_key"
    assert sleeps.asked == pytest.approx([0.1, 0.2, 0.3, 0.4])

    locked = await chat(attacker, BAD)
    assert locked.status_code == 429 and locked.headers["retry-after"] == "300"
    assert "www-authenticate" not in locked.headers
    assert locked.json()["error"] == {
        "message": "too many failed authentication attempts from this address; retry after 300 s",
        "type": "rate_limit_error",
        "param": None,
        "code": "auth_failures_exceeded",
        "request_id": locked.headers["x-request-id"],
    }

    messages = await attacker.post(
        "/v1/messages",
        headers={"x-api-key": "pb-guess", "anthropic-version": "2023-06-01"},
        json={"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert messages.status_code == 429 and messages.headers["retry-after"] == "300"
    assert messages.json()["type"] == "error" and messages.json()["error"]["type"] == "rate_limit_error"
    assert "retry after 300 s" in messages.json()["error"]["message"]
    for response in (
        await attacker.get("/v1/models", headers=bearer(BAD)),
        await attacker.get("/v1/models/default", headers=bearer(BAD)),
        await attacker.post("/v1/audio/speech", headers=bearer(BAD), json={"input": "hi"}),
        await attacker.post("/v1/realtime/client_secrets", headers=bearer(BAD), json={}),
    ):
        assert response.status_code == 429, response.request.url
        assert response.headers["retry-after"] == "300"
        assert response.json()["error"]["code"] == "auth_failures_exceeded"
    assert len(sleeps.asked) == 4  # refusals while locked are not slowed, nor counted

    # The legitimate holder, elsewhere, is untouched; and the key itself is never refused by
    # the throttle, even from the locked address (it is checked before the throttle is asked).
    holder = clients(HOLDER)
    assert (await holder.get("/v1/models", headers=bearer(key))).status_code == 200
    assert (await attacker.get("/v1/models", headers=bearer(key))).status_code == 200
    assert (await holder.get("/v1/models", headers=bearer(BAD))).status_code == 401


async def test_the_lockout_ends_after_its_time(
    clients: Callable[[str], httpx.AsyncClient], clock: Clock
) -> None:
    attacker = clients(ATTACKER)
    for _ in range(10):
        await chat(attacker, BAD)
    clock.now += 299
    answer = await chat(attacker, BAD)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
    clock.now += 1
    assert (await chat(attacker, BAD)).status_code == 401


async def test_failures_past_their_window_are_forgotten(
    clients: Callable[[str], httpx.AsyncClient], clock: Clock
) -> None:
    attacker = clients(ATTACKER)
    for _ in range(9):
        await chat(attacker, BAD)
    clock.now += 60
    assert [(await chat(attacker, BAD)).status_code for _ in range(9)] == [401] * 9
    assert (await chat(attacker, BAD)).status_code == 429


async def test_requests_without_a_key_are_not_counted(
    clients: Callable[[str], httpx.AsyncClient], sleeps: Sleeps
) -> None:
    anonymous = clients(ATTACKER)
    for _ in range(20):
        answer = await anonymous.get("/v1/models")
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_api_key"
    assert sleeps.asked == []
    assert (await anonymous.get("/v1/models", headers=bearer(BAD))).status_code == 401


async def test_a_revoked_key_counts_as_a_failure(
    clients: Callable[[str], httpx.AsyncClient], db: Database, sleeps: Sleeps
) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "Revoked")
        issued = await accounts.create_api_key(s, org.id, name="old")
        await accounts.revoke_api_key(s, org.id, issued.info.id)
    client = clients(ATTACKER)
    codes = [(await client.get("/v1/models", headers=bearer(issued.key))).status_code for _ in range(10)]
    assert codes == [401] * 9 + [429]


async def test_replicas_sharing_redis_count_each_others_failures(
    settings: Settings, db: Database, db_url: str, redis_url: str, unique_prefix: str, sleeps: Sleeps
) -> None:
    clock = Clock()
    key = await issue_key(db)
    second_db = Database(db_url)

    def shared() -> RedisFailureStore:
        return RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix, clock=clock)

    try:
        async with (
            serving(settings, db, shared(), sleeps) as one,
            serving(settings, second_db, shared(), sleeps) as two,
            from_address(one, ATTACKER) as on_one,
            from_address(two, ATTACKER) as on_two,
        ):
            assert [(await chat(on_one, BAD)).status_code for _ in range(5)] == [401] * 5
            assert [(await chat(on_two, BAD)).status_code for _ in range(4)] == [401] * 4
            assert sleeps.asked == pytest.approx([0.1, 0.2, 0.3, 0.4])  # the count runs on across replicas
            locking = await chat(on_two, BAD)
            assert locking.status_code == 429 and locking.headers["retry-after"] == "300"
            assert (await chat(on_one, BAD)).status_code == 429
            async with from_address(one, HOLDER) as holder:
                assert (await holder.get("/v1/models", headers=bearer(key))).status_code == 200
    finally:
        await second_db.dispose()
