"""The Keys page in real headless Chromium against a real Patchbay and the OpenAI emulator.

The acceptance journey: a person invited by the operator opens the link, sets a password, is
signed in, creates an API key on the Keys page, and the key read from the page works with the
official openai SDK against the org's connection to the emulator; then it is revoked.
"""

from __future__ import annotations

import re
from typing import Any

import openai

from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import Live, Seen
from tests.server.web.people import EMULATOR_TEXT, PASSWORD, add_connection_via_api, invite, ui_origin
from tests.server.web.test_journeys import make_org


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
    assert (cookie["name"], cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (
        "patchbay_session",
        True,
        True,
        "Strict",
    )
    assert await page.evaluate(
        "() => [document.cookie, sessionStorage.getItem('patchbay.adminToken'), localStorage.length]"
    ) == ["", None, 0]

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
        reply = await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
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
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.AuthenticationError:
            pass
        else:
            raise AssertionError("a revoked key was accepted")
    assert seen.errors == []
