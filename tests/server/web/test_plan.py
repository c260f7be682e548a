"""The plan on the AI settings page (real Chromium): the operator changes an org's tier and
BYOK override there, and the server and the page's flags follow; an org's owner sees the plan
read-only, with the line saying how to change it, and no form."""

from __future__ import annotations

from typing import Any

from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.test_journeys import make_org, sign_in_with_link


async def test_the_operator_changes_the_tier_and_override_and_an_owner_only_reads_them(
    live: Live, page_and_seen: tuple[Any, Seen], browser: Any
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)  # on pro
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings", exact=True).click()
    flags = page.locator(".tier-flags")
    assert "Tier pro" in (await flags.inner_text()).replace("\n", " ")

    form = page.locator("form.plan-form")
    await form.get_by_label("Tier").select_option("free")
    await form.get_by_label("BYOK override").select_option("on")
    await form.get_by_role("button", name="Save plan").click()
    await page.get_by_role("status").filter(has_text="Plan saved: tier free, BYOK override on").wait_for()
    shown = (await flags.inner_text()).replace("\n", " ")
    assert "Tier free" in shown and "may route to platform, byok." in shown
    await flags.locator(".badge-override").filter(has_text="BYOK override").wait_for()
    async with live.admin() as admin:
        offer = (await admin.get(f"/orgs/{org_id}/platform-connections")).json()
        assert (offer["tier"], offer["byok_override"]) == ("free", True)
        made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "owner", "name": "ci"})
        owner_token = made.json()["token"]

    context = await browser.new_context(locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        owner = await context.new_page()
        await owner.goto(f"{live.url}/ui/#token={owner_token}")
        await owner.get_by_role("link", name="AI settings", exact=True).click()
        await owner.locator(".plan-how").filter(has_text="subscribes on the Billing page").wait_for()
        assert "Tier free" in (await owner.locator(".tier-flags").inner_text()).replace("\n", " ")
        assert await owner.locator("form.plan-form").count() == 0
    finally:
        await context.close()
    assert seen.errors == []
