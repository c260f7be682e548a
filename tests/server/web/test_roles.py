"""Roles in the web UI: a viewer is offered no action on any page.

Every page is visited twice: as the operator (the control, which must be offered each page's
actions, so the check can fail) and as a person invited as a viewer, who must be offered only
controls that change nothing: navigation, filters, tabs and route traces.
"""

from __future__ import annotations

from typing import Any

from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.people import accept_in_page, add_connection_via_api, invite, person, ui_origin
from tests.server.web.test_journeys import make_org, sign_in_with_link

# Buttons and forms that change nothing: the navigation of the header, filters, tabs, traces.
READ_ONLY_BUTTONS = {
    "Sign out",
    "Sign out everywhere",
    "Refresh",
    "Show requests",
    "Show events",
    "Requests",
    "Audit log",
    "Show route",
    "Hide route",
}
READ_ONLY_FORMS = {"usage-window", "filters request-filters", "filters audit-filters"}
# What the same pages offer someone who may change things (the control: the check can fail).
ACTIONS = {
    "connections": {"Add connection", "Test", "Replace key", "Disable", "Revoke", "Delete", "↑", "↓"},
    "settings": {"Save routing", "Create agent", "Edit", "Delete"},
    "keys": {"Create key", "Revoke"},
    "activity": {"Turn content logging on"},
    "members": {"Create invite link", "Remove", "Create admin token", "Revoke"},
    "usage": set(),
}
PAGES = {
    "connections": ("AI Connections", "tr[data-profile='openai:main']"),
    "settings": ("AI settings", "tr[data-agent='support']"),
    "keys": ("Keys", "tr[data-key-name='app']"),
    "activity": ("Activity", ".logging-state"),
    "members": ("Members", "tr[data-member='viewer@example.com']"),
    "usage": ("Usage", ".usage-results p.empty"),
}


async def controls(page: Any) -> tuple[set[str], set[str], list[str]]:
    """The visible buttons (by name), forms (by class) and editable fields outside them."""
    found = await page.evaluate(
        """() => {
          const shown = (el) => el.getClientRects().length > 0;
          const buttons = [...document.querySelectorAll('button, input[type=submit], input[type=button]')].filter(shown);
          const forms = [...document.querySelectorAll('form')].filter(shown);
          const loose = [...document.querySelectorAll('main input, main textarea, main select')].filter((e) => shown(e) && !e.closest('form'));
          return [buttons.map((b) => (b.textContent || b.value || '').trim()), forms.map((f) => f.className), loose.map((e) => e.name)];
        }"""
    )
    return set(found[0]), set(found[1]), list(found[2])


async def visit(page: Any, name: str) -> None:
    label, ready = PAGES[name]
    await page.get_by_role("link", name=label, exact=True).click()
    await page.get_by_role("heading", name=label, level=1).wait_for()
    await page.locator(ready).first.wait_for()


async def assert_read_only(page: Any) -> None:
    """Every page, every tab: only controls that change nothing."""
    for name in PAGES:
        await visit(page, name)
        buttons, forms, loose = await controls(page)
        assert buttons <= READ_ONLY_BUTTONS, (name, buttons - READ_ONLY_BUTTONS)
        assert forms <= READ_ONLY_FORMS, (name, forms)
        assert loose == [], (name, loose)
        assert not (ACTIONS[name] & buttons)
        if name == "activity":
            await page.get_by_role("tab", name="Audit log").click()
            await page.locator("table.audit").wait_for()
            buttons, forms, _ = await controls(page)
            assert buttons <= READ_ONLY_BUTTONS and forms <= READ_ONLY_FORMS, (buttons, forms)
            await page.get_by_role("tab", name="Requests").click()


async def test_a_viewer_sees_no_action_on_any_page(
    live: Live, page_and_seen: tuple[Any, Seen], browser: Any, emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    _, url = emulator
    org_id = await make_org(live)
    await add_connection_via_api(live, org_id, url, ["gpt-4o-mini"])
    async with live.admin() as admin:
        agent = {"name": "support", "chains": {"chat": ["openai/gpt-4o-mini"]}}
        assert (await admin.post(f"/orgs/{org_id}/agents", json=agent)).status_code == 201
        assert (await admin.post(f"/orgs/{org_id}/api-keys", json={"name": "app"})).status_code == 201
        made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "viewer", "name": "ci"})
        assert made.status_code == 201
        viewer_token = made.json()["token"]
    await person(live, org_id, "owner@example.com", "owner")
    await accept_in_page(page, live, await invite(live, org_id, "viewer@example.com", "viewer"))
    assert await page.locator("#who").inner_text() == "viewer@example.com (viewer)"

    others = await browser.new_context(locale="en-US")
    others.set_default_timeout(TIMEOUT_MS)
    try:
        # The control: the operator, on the same pages, is offered every action the viewer is not.
        operator = await others.new_page()
        await sign_in_with_link(operator, live)
        for name in PAGES:
            await visit(operator, name)
            if name == "members":
                await operator.get_by_role("heading", name="Admin tokens").wait_for()
            offered = (await controls(operator))[0]
            assert ACTIONS[name] <= offered, (name, offered)
        await operator.close()

        # The invited viewer, then the org's viewer admin token: read-only pages only.
        await assert_read_only(page)
        token_page = await others.new_page()
        await token_page.goto(ui_origin(live) + "/ui/")
        await token_page.get_by_text("Sign in with an admin token instead").click()
        await token_page.get_by_label("Admin token").fill(viewer_token)
        await token_page.get_by_role("button", name="Sign in with the token").click()
        await token_page.get_by_role("heading", name="AI Connections", level=1).wait_for()
        assert await token_page.locator("#who").inner_text() == "token:ci (viewer)"
        await assert_read_only(token_page)
    finally:
        await others.close()

    # The viewer reads what is there: the routing of the agent, the members, no admin tokens.
    await visit(page, "settings")
    assert "openai/gpt-4o-mini" in await page.locator("tr[data-agent='support']").inner_text()
    await visit(page, "members")
    members = await page.locator("table.members tbody tr").evaluate_all("rs => rs.map(r => r.dataset.member)")
    assert members == ["owner@example.com", "viewer@example.com"]
    assert await page.get_by_role("heading", name="Admin tokens").count() == 0
    assert seen.errors == []
