"""The tier's `max connections` in the web UI (real Chromium): on the AI Connections page, adding
one connection more than the org's tier allows shows the API's reason in the form's alert, names
the tier that allows more, and adds nothing."""

from __future__ import annotations

from typing import Any

from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import profiles_in_page, sign_in_with_link

KEY = "sk-test-0123456789abcdef"


async def test_adding_beyond_the_tier_shows_why_and_adds_nothing(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    async with live.admin() as admin:
        created = await admin.post("/orgs", json={"name": "acme", "tier": "free"})
        assert created.status_code == 201, created.text
        org_id = created.json()["id"]
        for name in ("a", "b"):
            added = await admin.post(
                f"/orgs/{org_id}/connections", json={"provider": "openai", "name": name, "key": KEY}
            )
            assert added.status_code == 201, added.text
    await sign_in_with_link(page, live)
    await page.locator("table.connections tr[data-profile='openai:b']").first.wait_for()

    form = page.locator("form.add-connection")
    await form.get_by_label("Provider").select_option("openai")
    await form.get_by_label("Name").fill("c")
    await form.get_by_label("API key").fill(KEY)
    await form.get_by_role("button", name="Add connection").click()
    alert = form.get_by_role("alert")
    await alert.filter(has_text="tier free allows 2 connections and this org has 2").wait_for()
    assert "move to tier starter (5 connections)" in await alert.inner_text()
    assert await profiles_in_page(page) == ["openai:a", "openai:b"]
    assert [e for e in seen.errors if "403" not in e] == []
