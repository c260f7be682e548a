"""The Plans page and buying through Stripe in real headless Chromium, against the Stripe emulator:
the tier table with the org's plan highlighted, "Choose" starting a subscription checkout and
"Buy credits" a credit-pack checkout, each redirecting the browser to the emulator's payment
page; the test pays there (`complete`), delivers the signed webhook to the server, and the
Billing page shows the new balance and the Plans page the new plan. Without a Stripe key both
pages say purchases are off, also when a checkout is refused with 409 `purchases_off`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import Settings
from tests.emulators.harness import ServedApp
from tests.emulators.stripe_emulator import SECRET_KEY, WEBHOOK_SECRET, StripeEmulator
from tests.server.payments.conftest import PRICES, TIER_PRICES, WEBHOOK
from tests.server.web.conftest import Live, Seen, ui_settings
from tests.server.web.test_billing import figures, open_billing, rows
from tests.server.web.test_journeys import make_org, sign_in_with_link

OFF = "Purchases are off on this server: the operator has not set PATCHBAY_STRIPE_SECRET_KEY; credits come from grants."
HEADER = ["Plan", "free", "starter", "pro current", "agency", "enterprise"]
TABLE = [
    ["Platform models", "yes", "yes", "yes", "yes", "yes"],
    ["BYOK (your own keys)", "no", "yes", "yes", "yes", "yes"],
    ["Private endpoints", "no", "no", "yes", "yes", "yes"],
    ["Markup on platform models", "25%", "20%", "15%", "10%", "0%"],
]


@pytest.fixture
def stripe() -> Iterator[tuple[StripeEmulator, str]]:
    emu = StripeEmulator(prices=PRICES)
    with ServedApp(emu.app) as served:
        emu.checkout_origin = served.url
        yield emu, served.url


async def open_plans(page: Any) -> Any:
    await page.get_by_role("link", name="Plans").click()
    await page.get_by_role("heading", name="Plans", level=1).wait_for()
    table = page.locator("table.plans-compare")
    await table.wait_for()
    return table


async def pay_and_deliver(live: Live, emu: StripeEmulator, session_id: str) -> None:
    """The customer pays on Stripe's page; Stripe delivers each event, signed, to the webhook."""
    async with httpx.AsyncClient(timeout=10) as client:
        for event in emu.complete(session_id):
            delivered = await emu.deliver(client, live.url + WEBHOOK, event)
            assert delivered.status_code == 200, delivered.text


async def test_choose_a_plan_and_buy_credits_through_the_emulator(
    tmp_path: Path,
    stripe: tuple[StripeEmulator, str],
    serve_with: Callable[[Settings], AbstractAsyncContextManager[Live]],
    page_and_seen: tuple[Any, Seen],
) -> None:
    page, seen = page_and_seen
    emu, emu_url = stripe
    settings = ui_settings(
        tmp_path,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=emu_url,
        stripe_tier_prices=TIER_PRICES,
    )
    async with serve_with(settings) as live:
        org_id = await make_org(live, "acme")  # on `pro`
        await sign_in_with_link(page, live)

        # The table, the current plan highlighted, "Choose" only where this server sells the tier.
        table = await open_plans(page)
        [header, *body] = await rows(page, "table.plans-compare")
        assert header == HEADER and body[:4] == TABLE
        assert body[4:7] == [
            ["BYOK per-request charge", "none", "10% of the notional price", "none", "none", "none"],
            ["Platform voice fee", "$0.02/min", "$0.01/min", "$0.005/min", "none", "none"],
            ["Max connections", "2", "5", "25", "100", "no limit"],
        ]
        assert await table.locator("thead th[aria-current=true]").get_attribute("data-tier") == "pro"
        assert await table.locator("td.current").count() == len(body)
        assert body[7][1:] == [
            "Not sold here",
            "Choose starter",
            "Current plan",
            "Not sold here",
            "Not sold here",
        ]
        assert await page.get_by_text(OFF).count() == 0

        # Choose starter: a subscription checkout, and the browser is on the emulator's page.
        await table.get_by_role("button", name="Choose starter").click()
        await page.wait_for_url(re.compile(re.escape(emu_url) + r"/c/pay/cs_test_\w+$"))
        [sub_session] = [s for s in emu.sessions.values() if s["mode"] == "subscription"]
        assert page.url == sub_session["url"] and sub_session["metadata"] == {
            "org_id": org_id,
            "tier": "starter",
        }
        await page.get_by_role("heading", name="Pay 24.00 USD").wait_for()
        await pay_and_deliver(live, emu, sub_session["id"])
        await page.goto(sub_session["success_url"])
        await page.get_by_role("heading", name="Billing", level=1).wait_for()
        await page.get_by_role("status").filter(has_text="Payment sent.").wait_for()
        table = await open_plans(page)
        assert await table.locator("thead th[aria-current=true]").get_attribute("data-tier") == "starter"
        assert await table.get_by_role("button", name="Choose pro").count() == 1

        # Buy credits: a one-off checkout for the pack; the webhook grants, the page shows it.
        await open_billing(page)
        assert (await figures(page))["balance"] == "$0.00"
        packs = await rows(page, "table.buy-packs tbody")
        assert [r[:3] for r in packs] == [
            ["10 USD of credits", "$10.00", "$10.00"],
            ["50 USD of credits", "$50.00", "$50.00"],
            ["200 USD of credits (+5%)", "$200.00", "$210.00"],
        ]
        await page.locator("tr[data-pack=usd200]").get_by_role("button", name="Buy credits").click()
        await page.wait_for_url(re.compile(re.escape(emu_url) + r"/c/pay/cs_test_\w+$"))
        [pay_session] = [s for s in emu.sessions.values() if s["mode"] == "payment"]
        assert page.url == pay_session["url"] and pay_session["amount_total"] == 20_000
        await page.get_by_role("heading", name="Pay 200.00 USD").wait_for()
        await pay_and_deliver(live, emu, pay_session["id"])
        assert (await live.services.ledger.balance(org_id)).balance == 210_000_000
        await page.goto(pay_session["success_url"])
        await page.get_by_role("heading", name="Billing", level=1).wait_for()
        await page.locator("dl.figures [data-figure=balance] dd").filter(has_text="$210.00").wait_for()
        await page.get_by_role("status").filter(has_text="Payment sent.").wait_for()
    assert seen.errors == []


async def test_purchases_off_says_so_on_both_pages(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    await make_org(live, "acme")
    await sign_in_with_link(page, live)
    table = await open_plans(page)
    [header, *body] = await rows(page, "table.plans-compare")
    assert header == HEADER and body[:4] == TABLE
    await page.get_by_text(OFF).wait_for()
    assert await table.get_by_role("button").count() == 0

    await open_billing(page)
    buy = page.locator("section.buy")
    await buy.get_by_text(OFF).wait_for()
    assert await buy.get_by_role("button").count() == 0

    # A page that believed Stripe was on (a stale answer): the checkout's 409 says the same.
    async def stale_plans(route: Any) -> None:
        answer = await route.fetch()
        await route.fulfill(response=answer, json={**await answer.json(), "purchases": True})

    await page.route(lambda url: url.endswith("/admin/v1/plans"), stale_plans)
    await page.get_by_role("link", name="Usage").click()
    await page.get_by_role("heading", name="Usage", level=1).wait_for()
    await open_billing(page)
    async with page.expect_response(lambda r: r.url.endswith("/billing/checkout")) as refused:
        await buy.locator("tr[data-pack=usd10]").get_by_role("button", name="Buy credits").click()
    assert (await refused.value).status == 409
    await buy.get_by_text(OFF).wait_for()
    assert await buy.get_by_role("button").count() == 0
    assert json.loads(await (await refused.value).text())["error"]["type"] == "purchases_off"
    assert seen.errors == []


async def test_loading_and_failure_of_the_plans(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    await make_org(live, "acme")
    await sign_in_with_link(page, live)
    failing = {"on": True}

    async def plans(route: Any) -> None:
        if failing["on"]:
            await route.fulfill(
                status=500,
                content_type="application/json",
                body='{"error": {"type": "internal_error", "message": "plans are away"}}',
            )
        else:
            await route.continue_()

    await page.route(lambda url: url.endswith("/admin/v1/plans"), plans)
    await page.get_by_role("link", name="Plans").click()
    section = page.locator("section.plans")
    await (
        section.get_by_role("alert")
        .filter(has_text="Could not load compare plans: plans are away")
        .wait_for()
    )
    await open_billing(page)
    buy = page.locator("section.buy")
    await buy.get_by_role("alert").filter(has_text="Could not load buy credits: plans are away").wait_for()
    await page.locator("dl.figures").wait_for()  # the rest of the page is shown all the same
    failing["on"] = False
    await buy.get_by_role("button", name="Try again").click()
    await buy.get_by_text(OFF).wait_for()
    assert [e for e in seen.errors if "500" not in e] == []


async def test_a_viewer_compares_plans_but_may_not_choose(
    tmp_path: Path,
    stripe: tuple[StripeEmulator, str],
    serve_with: Callable[[Settings], AbstractAsyncContextManager[Live]],
    page_and_seen: tuple[Any, Seen],
) -> None:
    page, seen = page_and_seen
    settings = ui_settings(
        tmp_path, stripe_secret_key=SECRET_KEY, stripe_api_base=stripe[1], stripe_tier_prices=TIER_PRICES
    )
    async with serve_with(settings) as live:
        org_id = await make_org(live, "acme")
        async with live.admin() as admin:
            made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "viewer", "name": "viewer"})
            assert made.status_code == 201, made.text
        await page.goto(f"{live.url}/ui/")
        await page.get_by_text("Sign in with an admin token instead").click()
        await page.get_by_label("Admin token").fill(made.json()["token"])
        await page.get_by_role("button", name="Sign in with the token").click()
        await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
        table = await open_plans(page)
        [header, *body] = await rows(page, "table.plans-compare")
        assert header == HEADER and body[:4] == TABLE
        await page.get_by_text(
            "Choosing a plan needs the billing permission: owners and the billing role."
        ).wait_for()
        assert await table.get_by_role("button").count() == 0
        assert stripe[0].sessions == {}
    assert seen.errors == []
