"""Moving between pages (real Chromium): a page that finishes loading after the user has
moved on is dropped, never drawn over the page they moved to."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import make_org


async def test_a_slow_page_finishing_late_does_not_replace_the_page_moved_to(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_the_first_list(route: Any) -> None:
        if held.is_set():
            await route.continue_()
            return
        held.set()
        await release.wait()
        await route.continue_()

    await page.route(lambda url: url.endswith(f"/orgs/{org_id}/connections"), hold_the_first_list)
    await page.goto(f"{live.url}/ui/#token={live.token}")
    await held.wait()  # the Connections page is loading and cannot finish yet
    await page.get_by_role("link", name="AI settings", exact=True).click()
    await page.locator(".tier-flags").wait_for()
    assert await page.locator("#page").get_attribute("data-settled") == "1"

    release.set()
    await page.locator("#page[data-settled='2']").wait_for(state="attached")
    assert await page.get_by_role("heading", name="AI settings", level=1).is_visible()
    assert await page.get_by_role("heading", name="AI Connections").count() == 0
    assert "#/settings" in page.url
    assert seen.errors == []
