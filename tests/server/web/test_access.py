"""People in the web UI, in real headless Chromium against a real Patchbay and the OpenAI emulator.

An invited person sets a password, creates an API key on the Keys page and uses it with the
openai SDK; a viewer sees no action anywhere; a cross-site form post is refused; a wrong
password is refused and "Sign out everywhere" ends another browser's session.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import openai

from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.people import (
    EMULATOR_TEXT,
    PASSWORD,
    accept_in_page,
    add_connection_via_api,
    invite,
    person,
    sign_in_with_password,
    ui_origin,
)
from tests.server.web.test_journeys import make_org, sign_in_with_link


async def test_invited_person_creates_a_key_and_uses_it_with_the_openai_sdk(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    emu, url = emulator
    emu.api_key = None
    org_id = await make_org(live)
    await add_connection_via_api(live, org_id, url, ["gpt-4o-mini"])
    link = await invite(live, org_id, "ada@example.com", "admin")

    # The invite: what it is for, then a password of at least 12 characters, typed twice.
    await page.goto(ui_origin(live) + link)
    summary = page.locator(".invite-summary")
    await summary.filter(has_text="as admin").wait_for()
    assert "acme" in await summary.inner_text() and "ada@example.com" in await summary.inner_text()
    assert "pbi-" not in page.url
    await page.get_by_label("Choose a password").fill("too-short")
    await page.get_by_label("Confirm the password").fill("too-short")
    await page.get_by_role("button", name="Create account and join").click()
    await page.locator(".field[data-param='password'] .error").filter(has_text="at least 12").wait_for()
    await page.get_by_label("Choose a password").fill(PASSWORD)
    await page.get_by_label("Confirm the password").fill(PASSWORD + "!")
    await page.get_by_role("button", name="Create account and join").click()
    await page.locator(".field[data-param='confirm'] .error").filter(has_text="differ").wait_for()
    await page.get_by_label("Confirm the password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account and join").click()
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
    assert await page.locator("#who").inner_text() == "ada@example.com (admin)"
    # The session is an HttpOnly cookie the page cannot read; nothing is kept in storage.
    [cookie] = await page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == ("patchbay_session", True, True, "Strict")
    assert await page.evaluate("() => [document.cookie, sessionStorage.getItem('patchbay.adminToken'), localStorage.length]") == ["", None, 0]

    # The Keys page: empty, then a key limited to one model, expiring in 30 days.
    await page.get_by_role("link", name="Keys", exact=True).click()
    await page.get_by_text("No keys yet. Create one below.").wait_for()
    form = page.locator("form.create-key")
    await form.get_by_label("Name").fill("support bot")
    await form.get_by_label("Allowed models").fill("openai/gpt-4o-mini")
    await form.get_by_label("Expiry").select_option("30d")
    await form.get_by_role("button", name="Create key").click()
    panel = page.locator(".key-panel")
    await panel.get_by_text("you will not see it again").wait_for()
    key = (await panel.locator("#new-key").inner_text()).strip()
    assert key.startswith("pb-")
    python = await panel.locator(".snippet-python").inner_text()
    assert f'OpenAI(base_url="{ui_origin(live)}/v1", api_key="{key}")' in python
    assert 'model="openai/gpt-4o-mini"' in python
    assert f"Bearer {key}" in await panel.locator(".snippet-curl").inner_text()
    listed = page.locator("table.api-keys tr[data-key-name='support bot']")
    assert re.fullmatch(r"pb-\S+…", await listed.locator("td").nth(0).inner_text())
    assert await listed.locator("td").nth(1).inner_text() == "active"
    assert await listed.locator("td").nth(3).inner_text() == "openai/gpt-4o-mini"

    # The key works with the official SDK, against the org's connection to the emulator.
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0) as client:
        reply = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == EMULATOR_TEXT

    # Closing the panel is the last time the key is shown.
    await panel.get_by_role("button", name="Done").click()
    await panel.wait_for(state="detached")
    assert key not in await page.content()
    async with live.admin() as admin:
        [made] = (await admin.get(f"/orgs/{org_id}/api-keys")).json()
    assert (made["name"], made["models"], made["status"]) == ("support bot", ["openai/gpt-4o-mini"], "active")
    assert made["expires_at"] is not None

    # Revoke, confirmed: the SDK is refused from then on.
    await listed.get_by_role("button", name="Revoke").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    await page.get_by_role("status").filter(has_text="revoked").wait_for()
    assert await listed.locator("td").nth(1).inner_text() == "revoked"
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0) as client:
        try:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            pass
        else:
            raise AssertionError("a revoked key was accepted")
    assert seen.errors == []


# Buttons and forms that change nothing: the navigation of the header, filters, tabs, traces.
READ_ONLY_BUTTONS = {"Sign out", "Sign out everywhere", "Refresh", "Show requests", "Show events", "Requests", "Audit log", "Show route", "Hide route"}
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


async def test_a_viewer_sees_no_action_on_any_page(
    live: Live, page_and_seen: tuple[Any, Seen], browser: Any, emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    _, url = emulator
    org_id = await make_org(live)
    await add_connection_via_api(live, org_id, url, ["gpt-4o-mini"])
    async with live.admin() as admin:
        assert (await admin.post(f"/orgs/{org_id}/agents", json={"name": "support", "chains": {"chat": ["openai/gpt-4o-mini"]}})).status_code == 201
        assert (await admin.post(f"/orgs/{org_id}/api-keys", json={"name": "app"})).status_code == 201
        assert (await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": "viewer", "name": "ci"})).status_code == 201
    await person(live, org_id, "owner@example.com", "owner")
    await accept_in_page(page, live, await invite(live, org_id, "viewer@example.com", "viewer"))
    assert await page.locator("#who").inner_text() == "viewer@example.com (viewer)"

    # The control: the operator, on the same pages, is offered every action the viewer is not.
    operator_context = await browser.new_context(locale="en-US")
    operator_context.set_default_timeout(TIMEOUT_MS)
    operator = await operator_context.new_page()
    try:
        await sign_in_with_link(operator, live)
        offered: dict[str, set[str]] = {}
        for name in PAGES:
            await visit(operator, name)
            if name == "members":
                await operator.get_by_role("heading", name="Admin tokens").wait_for()
            offered[name] = (await controls(operator))[0]
            assert ACTIONS[name] <= offered[name], (name, offered[name])
    finally:
        await operator_context.close()

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
    # The viewer reads what is there: the routing of the agent, the key's prefix, the members.
    await visit(page, "settings")
    assert "openai/gpt-4o-mini" in await page.locator("tr[data-agent='support']").inner_text()
    await visit(page, "members")
    assert await page.locator("table.members tbody tr").evaluate_all("rs => rs.map(r => r.dataset.member)") == [
        "owner@example.com", "viewer@example.com",
    ]
    assert await page.get_by_role("heading", name="Admin tokens").count() == 0
    assert seen.errors == []


class CrossSite:
    """Another site (`http://127.0.0.1:<port>`) whose page posts a form to the UI's origin at once."""

    def __init__(self, target: str, fields: dict[str, str]) -> None:
        inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
        self.page = (
            '<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="POST" action="{target}" enctype="text/plain">{inputs}</form></body></html>'
        ).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": self.page})


async def test_a_cross_site_form_post_is_refused(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await person(live, org_id, "owner@example.com", "owner")
    await sign_in_with_password(page, live, "owner@example.com")
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
    target = f"{ui_origin(live)}/admin/v1/orgs/{org_id}/agents"

    # From another site: the form's text/plain body is the JSON an agent would need.
    with ServedApp(CrossSite(target, {'{"name": "evil", "pad": "': '"}'})) as other:
        assert other.url.startswith("http://127.0.0.1:")
        async with page.expect_response(lambda r: r.url == target) as answered:
            await page.goto(other.url + "/")
        response = await answered.value
    assert response.request.method == "POST"
    assert response.status in (401, 403), response.status

    # From the UI's own origin, without the CSRF header: refused too (the cookie alone is not enough).
    await page.goto(ui_origin(live) + "/ui/#/settings")
    await page.get_by_role("heading", name="AI settings", level=1).wait_for()
    bare = await page.evaluate(
        """async (url) => {
          const r = await fetch(url, {method: 'POST', credentials: 'same-origin', headers: {'content-type': 'application/json'}, body: JSON.stringify({name: 'evil2'})});
          return [r.status, (await r.json()).error.type];
        }""",
        target,
    )
    assert bare == [403, "csrf_failed"]

    # The page itself, with the header, may: the same session creates an agent.
    agent_form = page.locator("form.agent-form")
    await agent_form.get_by_label("Name").fill("good")
    await agent_form.get_by_role("button", name="Create agent").click()
    await page.get_by_role("status").filter(has_text="Agent good created").wait_for()
    async with live.admin() as admin:
        agents = (await admin.get(f"/orgs/{org_id}/agents")).json()
    assert [a["name"] for a in agents] == ["good"]
    assert seen.errors == []


async def test_wrong_password_then_sign_out_everywhere_ends_the_other_browser(
    live: Live, page_and_seen: tuple[Any, Seen], browser: Any
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await person(live, org_id, "ada@example.com", "owner")

    await sign_in_with_password(page, live, "ada@example.com", "not the password at all")
    await page.locator("#password-error").filter(has_text="Wrong email or password").wait_for()
    assert await page.locator("#top").is_hidden()
    assert await page.get_by_label("Password").input_value() == ""
    assert await page.context.cookies() == []
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()

    other_context = await browser.new_context(locale="en-US")
    other_context.set_default_timeout(TIMEOUT_MS)
    other = await other_context.new_page()
    try:
        await sign_in_with_password(other, live, "ada@example.com")
        await other.get_by_role("heading", name="AI Connections", level=1).wait_for()
        # A reload keeps a person signed in: the cookie is the session.
        await other.reload()
        await other.get_by_role("heading", name="AI Connections", level=1).wait_for()

        await page.get_by_role("button", name="Sign out everywhere").click()
        await page.get_by_role("alert").filter(has_text="signed out on every browser").wait_for()
        assert await page.context.cookies() == []

        # The other browser learns at its next request: back to the sign-in screen, saying why.
        await other.get_by_role("link", name="Members", exact=True).click()
        await other.get_by_role("alert").filter(has_text="Your session has ended").wait_for()
        await other.get_by_role("heading", name="Sign in to Patchbay").wait_for()
        assert await other.locator("#top").is_hidden()
    finally:
        await other_context.close()
    async with live.admin() as admin:
        actions = [e["action"] for e in (await admin.get("/orgs/" + org_id + "/audit")).json()]
    assert "member.join" in actions
    assert seen.errors == []
