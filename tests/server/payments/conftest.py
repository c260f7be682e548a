"""A Patchbay app wired to the Stripe emulator, over a real database on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server.app import create_app
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from tests.emulators.harness import ServedApp
from tests.emulators.stripe_emulator import SECRET_KEY, WEBHOOK_SECRET, StripeEmulator
from tests.server.conftest import ADMIN_TOKEN

PRICES = {"price_starter": 1900, "price_pro": 9900, "price_byok_fee": 500, "price_enterprise": 49900}
TIER_PRICES = "starter=price_starter+price_byok_fee,pro=price_pro,enterprise=price_enterprise"
WEBHOOK = "/v1/stripe/webhook"
START = datetime(2026, 5, 28, 12, 0, tzinfo=UTC)


class Clock:
    """The test's time: Stripe's (the emulator's `created`) and the server's billing clock."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def unix(self) -> int:
        return int(self.now.timestamp())

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(clock: Clock) -> Iterator[tuple[StripeEmulator, str]]:
    emu = StripeEmulator(prices=PRICES, clock=clock.unix)
    with ServedApp(emu.app) as served:
        yield emu, served.url


@pytest.fixture
async def app(settings: Settings, db: Database, clock: Clock) -> AsyncIterator[FastAPI]:
    """The app on the test's clock: the grace sweeper and the usage reporter run on it."""
    application = create_app(settings, services=Services.build(settings, db, Overrides(billing_clock=clock)))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def emu(emulator: tuple[StripeEmulator, str]) -> StripeEmulator:
    return emulator[0]


@pytest.fixture
def settings(tmp_path: Path, db_url: str, emulator: tuple[StripeEmulator, str]) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token=ADMIN_TOKEN,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=emulator[1],
        stripe_tier_prices=TIER_PRICES,
    )


@pytest.fixture
async def org(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": "acme", "tier": "free"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def checkout(
    client: httpx.AsyncClient, headers: dict[str, str], org: str, **body: str
) -> dict[str, str]:
    r = await client.post(f"/admin/v1/orgs/{org}/billing/checkout", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())
