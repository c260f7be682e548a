"""Platform connections in the web UI (real Chromium): the operator adds and manages them on the
AI Connections page; an org's viewer sees them read-only as the platform models its org may use,
without key or fingerprint; the AI settings page shows the org's tier and its BYOK override."""

from __future__ import annotations

import secrets
from typing import Any

from routing.tables import OrgAISettings
from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.test_journeys import make_org, page_state, sign_in_with_link

CANARY = "sk-test-CANARY-platform-" + secrets.token_hex(8)


async def set_override(live: Live, org_id: str, on: bool) -> None:
    """What the legacy import sets for `byokEnabled` (server/legacy.py), then the change notice."""
    async with live.services.db.session() as s:
        row = await s.get(OrgAISettings, org_id)
        if row is None:
            s.add(OrgAISettings(org_id=org_id, routing={}, byok_enabled=on))
        else:
            row.byok_enabled = on
    live.services.config_changed(org_id)


async def test_the_operator_manages_platform_connections_and_a_viewer_reads_them(
    live: Live, page_and_seen: tuple[Any, Seen], browser: Any, emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    _, url = emulator
    org_id = await make_org(live)
    await sign_in_with_link(page, live)
    section = page.locator("section.platform")
    await section.get_by_text("No platform connections").wait_for()

    form = page.locator("form.add-platform-connection")
    await form.get_by_label("Provider").select_option("openai")
    await form.get_by_label("Name").fill("shared")
    await form.get_by_label("Base URL").fill(url)
    await form.get_by_label("API key").fill(CANARY)
    await form.get_by_label("Models").fill("gpt-4o-mini")
    await form.get_by_role("button", name="Add connection").click()
    await page.get_by_role("status").filter(has_text="Added openai:shared").wait_for()
    row = page.locator("table.platform-connections tr[data-profile='openai:shared']:not(.detail)")
    assert "billed: platform" in await row.inner_text()
    assert CANARY[-4:] in await row.locator("td.key").inner_text()  # the fingerprint, for the operator
    # The org's own table is untouched, and platform rows offer no test and no reordering.
    assert await page.locator("table.connections tr[data-profile='openai:shared']").count() == 0
    assert await row.get_by_role("button", name="Test").count() == 0
    await row.get_by_role("button", name="Disable").click()
    await page.get_by_role("status").filter(has_text="openai:shared disabled").wait_for()
    async with live.admin() as admin:
        listed = (await admin.get("/platform/connections")).json()
        assert [(c["profile_id"], c["status"]) for c in listed] == [("openai:shared", "disabled")]
        await admin.patch("/platform/connections/openai:shared", json={"enabled": True})
        made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "viewer", "name": "ci"})
        viewer_token = made.json()["token"]
    assert CANARY not in await page_state(page)

    # The org's viewer: the platform's offer, read-only, with no key material at all.
    context = await browser.new_context(locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        viewer = await context.new_page()
        await viewer.goto(f"{live.url}/ui/#token={viewer_token}")
        offer = viewer.locator("table.platform-offer tr[data-platform='openai:shared']")
        await offer.wait_for()
        text = await offer.inner_text()
        assert "gpt-4o-mini" in text and "openai/…" in text
        assert await viewer.locator("section.platform button, section.platform form").count() == 0
        assert await viewer.locator("table.platform-connections").count() == 0
        assert CANARY[-4:] not in await viewer.content()

        # The tier and the BYOK override (a migrated org's), as a visible flag.
        await set_override(live, org_id, True)
        await viewer.get_by_role("link", name="AI settings", exact=True).click()
        flags = viewer.locator(".tier-flags")
        await flags.wait_for()
        assert "Tier pro" in (await flags.inner_text()).replace("\n", " ")
        await flags.locator(".badge-override").filter(has_text="BYOK override").wait_for()
    finally:
        await context.close()
    assert seen.errors == []


async def test_without_an_override_the_settings_page_shows_only_the_tier(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await set_override(live, org_id, False)
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings", exact=True).click()
    flags = page.locator(".tier-flags")
    await flags.wait_for()
    assert "may route to platform, byok, private" in await flags.inner_text()
    assert await flags.locator(".badge-override").count() == 0
    assert seen.errors == []
