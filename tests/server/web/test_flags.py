"""The Flags page in real Chromium: the operator sees every flag, rolls one out to 0%, makes
the selected org a canary and kills it, and the stored rollout follows each click; a failing
load shows the API's message and a retry; an org's viewer has no Flags link and no page."""

from __future__ import annotations

from typing import Any

from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.test_journeys import make_org, sign_in_with_link


async def _byok(live: Live) -> dict[str, Any]:
    async with live.admin() as admin:
        flags = (await admin.get("/flags")).json()
    return dict(next(f for f in flags if f["name"] == "byok"))


async def test_the_operator_rolls_out_canaries_and_kills_a_flag(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="Flags", exact=True).click()
    await page.get_by_role("heading", name="Feature flags", level=1).wait_for()
    rows = page.locator("table.flags tbody tr")
    await rows.first.wait_for()
    assert [await r.get_attribute("data-flag") for r in await rows.all()] == [
        "byok",
        "private_endpoints",
        "voice",
        "billing_enforcement",
    ]
    byok = page.locator("tr[data-flag='byok']")
    await byok.get_by_label("Percent for byok").fill("0")
    await byok.get_by_role("button", name="Set percent of byok").click()
    await page.get_by_role("status").filter(has_text="byok: 0% of orgs").wait_for()
    assert (await _byok(live))["percent"] == 0

    await page.get_by_role("button", name="Make acme a byok canary").click()
    await page.get_by_role("status").filter(has_text="byok: acme is a canary").wait_for()
    assert (await _byok(live))["canary"] == [org_id]
    assert org_id in await page.locator("tr[data-flag='byok'] td.canary").inner_text()

    await page.get_by_role("button", name="Kill byok").click()
    await page.get_by_role("status").filter(has_text="byok killed: off for every org").wait_for()
    assert (await _byok(live))["killed"] is True
    await page.locator("tr[data-flag='byok'] td.state").filter(has_text="killed").wait_for()
    await page.get_by_role("button", name="Release byok").click()
    await page.get_by_role("status").filter(has_text="byok released").wait_for()
    assert (await _byok(live))["killed"] is False
    assert seen.errors == []


async def test_a_failed_load_says_why_and_retries(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, _ = page_and_seen
    await make_org(live)
    await sign_in_with_link(page, live)
    failing = True

    async def flags_route(route: Any) -> None:
        if failing:
            await route.fulfill(
                status=503,
                content_type="application/json",
                body='{"error": {"message": "the database is unreachable", "type": "api_error"}}',
            )
        else:
            await route.continue_()

    await page.route("**/admin/v1/flags", flags_route)
    await page.get_by_role("link", name="Flags", exact=True).click()
    alert = page.get_by_role("alert").filter(has_text="Could not load flags")
    await alert.wait_for()
    assert "the database is unreachable" in await alert.inner_text()
    failing = False
    await page.get_by_role("button", name="Try again").click()
    await page.locator("tr[data-flag='voice']").wait_for()


async def test_an_org_viewer_has_no_flags_page(live: Live, browser: Any) -> None:
    org_id = await make_org(live)
    async with live.admin() as admin:
        made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "viewer", "name": "ci"})
    context = await browser.new_context(locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        viewer = await context.new_page()
        await viewer.goto(f"{live.url}/ui/#token={made.json()['token']}")
        await viewer.get_by_role("heading", name="AI Connections", level=1).wait_for()
        assert await viewer.get_by_role("link", name="Flags", exact=True).is_hidden()
        await viewer.goto(f"{live.url}/ui/#/flags")
        await viewer.get_by_text("cannot see this page").wait_for()
    finally:
        await context.close()
