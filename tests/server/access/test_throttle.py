"""Failed admin tokens and passwords from one address are slowed, then refused with 429 before
the credential is even checked; the holder elsewhere keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from server.app import create_app
from server.auth_throttle import AuthThrottle
from server.auth_throttle_policy import ThrottlePolicy
from server.auth_throttle_store import InProcessFailureStore
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from tests.server.conftest import ADMIN_TOKEN
from tests.server.throttle_fakes import Clock, Sleeps

ATTACKER, HOLDER = "203.0.113.66", "198.51.100.7"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def app(settings: Settings, db: Database, clock: Clock, sleeps: Sleeps) -> AsyncIterator[FastAPI]:
    policy = ThrottlePolicy(limit=6, window=60.0, lockout=300.0)
    throttle = AuthThrottle(policy, InProcessFailureStore(policy, clock=clock), sleep=sleeps)
    application = create_app(
        settings, services=Services.build(settings, db, Overrides(auth_throttle=throttle))
    )
    async with application.router.lifespan_context(application):
        yield application


def from_address(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40_000)), base_url="https://patchbay.test"
    )


async def test_wrong_admin_tokens_lock_the_address_out_and_only_it(
    app: FastAPI, clock: Clock, sleeps: Sleeps
) -> None:
    attacker, holder = from_address(app, ATTACKER), from_address(app, HOLDER)
    statuses = [
        (
            await attacker.get("/admin/v1/orgs", headers={"authorization": f"Bearer pbt-guess{i:040d}"})
        ).status_code
        for i in range(7)
    ]
    assert statuses == [401] * 5 + [429, 429]
    assert sleeps.asked and max(sleeps.asked) > 0  # slowed before the lockout
    locked = await attacker.get("/admin/v1/orgs", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert locked.json()["error"]["type"] == "rate_limited"
    assert (
        await holder.get("/admin/v1/orgs", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    ).status_code == 200
    # No credential at all is not a guess.
    assert (await from_address(app, "192.0.2.9").get("/admin/v1/orgs")).status_code == 401
    clock.now += 301
    assert (
        await attacker.get("/admin/v1/orgs", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    ).status_code == 200


async def test_wrong_passwords_lock_the_address_out_before_the_password_is_checked(app: FastAPI) -> None:
    operator = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    admin = from_address(app, "192.0.2.1")
    org = (await admin.post("/admin/v1/orgs", json={"name": "acme"}, headers=operator)).json()
    link = (
        await admin.post(
            f"/admin/v1/orgs/{org['id']}/invites",
            json={"email": "ada@example.com", "role": "viewer"},
            headers=operator,
        )
    ).json()["link"]
    assert (
        await from_address(app, HOLDER).post(
            "/auth/invite/accept", json={"token": link.split("#invite=")[1], "password": PASSWORD}
        )
    ).status_code == 200
    attacker = from_address(app, ATTACKER)
    statuses = [
        (
            await attacker.post("/auth/login", json={"email": "ada@example.com", "password": f"guess {i}"})
        ).status_code
        for i in range(7)
    ]
    assert statuses == [401] * 5 + [429, 429]
    right = await attacker.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert right.status_code == 429 and "set-cookie" not in right.headers
    assert (
        await from_address(app, HOLDER).post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
    ).status_code == 200
