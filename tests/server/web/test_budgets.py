"""Spend caps in the web UI, in real headless Chromium against a real Patchbay: the org's
monthly budget on the AI settings page, and a key's spend limit on the Keys page (at creation
and changed afterwards), checked in the page and through the admin API."""

from __future__ import annotations

from typing import Any

from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import make_org, sign_in_with_link


async def test_the_operator_sets_the_budget_and_a_keys_spend_limit(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await sign_in_with_link(page, live)

    await page.get_by_role("link", name="AI settings").click()
    section = page.locator("section[aria-labelledby='budget-title']")
    await section.get_by_text("no limit").wait_for()
    budget = section.get_by_label("Monthly budget (USD)")
    await budget.fill("1.1234567")  # finer than a micro-dollar: refused, shown under the field
    await section.get_by_role("button", name="Save budget").click()
    await (
        section.locator(".field[data-param='monthly_budget'] .error")
        .filter(has_text="micro-dollar")
        .wait_for()
    )
    await budget.fill("99.50")
    await section.get_by_role("button", name="Save budget").click()
    await page.get_by_role("status").filter(has_text="Budget set to 99.50 USD a month").wait_for()
    assert "0.00 of 99.50 USD" in await section.locator(".budget-summary").inner_text()
    async with live.admin() as admin:
        assert (await admin.get(f"/orgs/{org_id}/budget")).json()["monthly_budget_micro_usd"] == 99_500_000

    await page.get_by_role("link", name="Keys", exact=True).click()
    form = page.locator("form.create-key")
    await form.get_by_label("Name").fill("bot")
    await form.get_by_label("Monthly spend limit (USD)").fill("25")
    await form.get_by_role("button", name="Create key").click()
    await page.locator(".key-panel").get_by_role("button", name="Done").click()
    listed = page.locator("table.api-keys tr[data-key-name='bot']")
    await listed.locator("td.spend").filter(has_text="0.00 of 25.00 USD").wait_for()

    await listed.get_by_role("button", name="Spend limit").click()
    limit = page.locator("form.limit-form")
    await limit.get_by_label("Monthly spend limit (USD)").fill("7.25")
    await limit.get_by_role("button", name="Save limit").click()
    await page.get_by_role("status").filter(has_text="may spend 7.25 USD a month").wait_for()
    assert await listed.locator("td.spend").inner_text() == "0.00 of 7.25 USD"
    await limit.wait_for(state="detached")
    async with live.admin() as admin:
        [key] = (await admin.get(f"/orgs/{org_id}/api-keys")).json()
    assert key["spend_limit_micro_usd"] == 7_250_000

    # Emptied: no limit of its own.
    await listed.get_by_role("button", name="Spend limit").click()
    await limit.get_by_label("Monthly spend limit (USD)").fill("")
    await limit.get_by_role("button", name="Save limit").click()
    await listed.locator("td.spend").filter(has_text="no limit").wait_for()
    assert seen.errors == []
