"""The web UI in real headless Chromium against a real Patchbay and the OpenAI emulator.

Each test is a user journey. Outcomes are checked in the page and through the admin API;
canary keys typed into the page must never come back: not in the DOM, not in any response
the page received, not in the server's logs.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from server.settings import Settings
from tests.emulators.openai import OpenAIEmulator
from tests.providers.vault.canary import LeakReport, captured_logs
from tests.server.web.conftest import Live, Seen, ui_settings

CANARY_MAIN = "sk-test-CANARY-main-" + secrets.token_hex(8)
CANARY_NEW = "sk-test-CANARY-new-" + secrets.token_hex(8)
CANARY_BACKUP = "sk-test-CANARY-backup-" + secrets.token_hex(8)
CANARIES = (CANARY_MAIN, CANARY_NEW, CANARY_BACKUP)


async def page_state(page: Any) -> str:
    """The DOM, every input's live value (not part of the markup) and both storages."""
    values = await page.evaluate(
        "() => [...document.querySelectorAll('input, textarea, select')].map((e) => e.value).join('\\n')"
        " + JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage}) + document.cookie"
    )
    return str(await page.content()) + "\n" + str(values)


async def sign_in_with_link(page: Any, live: Live) -> None:
    await page.goto(f"{live.url}/ui/#token={live.token}")
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
    assert live.token not in page.url


async def make_org(live: Live, name: str = "acme") -> str:
    async with live.admin() as admin:
        created = await admin.post("/orgs", json={"name": name, "tier": "pro"})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def row(page: Any, profile: str) -> Any:
    return page.locator(f"tr[data-profile='{profile}']:not(.detail)")


async def add_connection(
    page: Any, *, name: str, base_url: str, key: str, models: str = "gpt-4o-mini"
) -> None:
    form = page.locator("form.add-connection")
    await form.get_by_label("Provider").select_option("openai")
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("Base URL").fill(base_url)
    await form.get_by_label("API key").fill(key)
    await form.get_by_label("Models").fill(models)
    await form.get_by_role("button", name="Add connection").click()
    await page.get_by_role("status").filter(has_text=f"Added openai:{name}").wait_for()


async def profiles_in_page(page: Any) -> list[str]:
    return [
        str(p)
        for p in await page.locator("table.connections tr[data-profile]:not(.detail)").evaluate_all(
            "rs => rs.map(r => r.dataset.profile)"
        )
    ]


async def open_token_form(page: Any) -> Any:
    """The admin token is the second way to sign in, behind a disclosure; its field, once open."""
    await page.get_by_text("Sign in with an admin token instead").click()
    return page.get_by_label("Admin token")


async def test_sign_in_wrong_token_then_right_one_then_out(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    await page.goto(live.url + "/")
    assert page.url == live.url + "/ui/"
    # Email and password first; the token behind a disclosure.
    await page.get_by_label("Email").wait_for()
    assert await page.get_by_label("Admin token").is_hidden()
    token_box = await open_token_form(page)
    assert await token_box.get_attribute("type") == "password"

    await token_box.fill("not-the-token-" + secrets.token_hex(4))
    await page.get_by_role("button", name="Sign in with the token").click()
    await page.get_by_role("alert").filter(has_text="not accepted").wait_for()
    assert await page.locator("#top").is_hidden()

    await token_box.fill(live.token)
    await page.get_by_role("button", name="Sign in with the token").click()
    # No org yet: the page offers to create one, and then shows its connections.
    await page.get_by_role("heading", name="Create an organisation").wait_for()
    await page.get_by_label("Organisation name").fill("acme")
    await page.get_by_role("button", name="Create organisation").click()
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
    assert await page.get_by_label("Organisation").input_value() != ""
    stored = await page.evaluate(
        "() => [sessionStorage.getItem('patchbay.adminToken'), localStorage.length, document.cookie]"
    )
    assert stored == [live.token, 0, ""]

    assert await page.get_by_role("button", name="Sign out everywhere").is_hidden()  # a token is no person
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.get_by_role("heading", name="Sign in to Patchbay").wait_for()
    assert await page.evaluate("() => sessionStorage.getItem('patchbay.adminToken')") is None

    # A token that stops working mid-session (here: a stale one) lands on the sign-in screen.
    await page.evaluate("() => sessionStorage.setItem('patchbay.adminToken', 'stale-token-0123456789')")
    await page.reload()
    await page.get_by_role("alert").filter(has_text="not accepted").wait_for()
    assert seen.errors == []


async def test_admin_api_turned_off_shows_why_on_the_sign_in_screen(
    tmp_path: Path,
    serve_with: Callable[[Settings], AbstractAsyncContextManager[Live]],
    page_and_seen: tuple[Any, Seen],
) -> None:
    page, seen = page_and_seen
    async with serve_with(ui_settings(tmp_path, admin_api=False)) as live:
        assert live.token == "" and not (tmp_path / "admin.token").exists()
        await page.goto(live.url + "/ui/")
        await page.get_by_role("alert").filter(has_text="PATCHBAY_ADMIN_API=false").wait_for()
        await (await open_token_form(page)).fill("anything-at-all-123")
        await page.get_by_role("button", name="Sign in with the token").click()
        await page.locator("#token-error").filter(has_text="PATCHBAY_ADMIN_API=false").wait_for()
    assert seen.errors == []


async def test_connection_journey_never_leaks_the_key(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    emu, url = emulator
    emu.api_key = CANARY_MAIN
    org_id = await make_org(live)
    api_path = f"/orgs/{org_id}/connections"
    states: list[str] = []  # the page after each step that typed a key: a reload would hide a leak
    with captured_logs() as logs:
        await sign_in_with_link(page, live)
        await page.get_by_text("No connections yet").wait_for()

        # A custom endpoint without a base URL: the API's message, next to the field.
        form = page.locator("form.add-connection")
        await form.get_by_label("Provider").select_option("openai_compatible")
        await form.get_by_label("Name").fill("mylab")
        await form.get_by_role("button", name="Add connection").click()
        url_field = form.locator(".field[data-param='base_url']")
        await url_field.locator(".error").filter(has_text="needs a base URL").wait_for()
        assert await url_field.locator("input").get_attribute("aria-invalid") == "true"

        # Add, see the fingerprint (never the key), test: every probe passes, health is ok.
        await add_connection(
            page, name="main", base_url=url, key=CANARY_MAIN, models="gpt-4o-mini:text,tools, gpt-4o"
        )
        states.append(await page_state(page))
        async with live.admin() as admin:
            main = (await admin.get(f"{api_path}/openai:main")).json()
        # Capabilities are declared after a colon; a capability after a comma stays with its model.
        assert main["models"] == [
            {"id": "gpt-4o-mini", "capabilities": ["text", "tools"]},
            {"id": "gpt-4o", "capabilities": ["text"]},
        ]
        await row(page, "openai:main").get_by_text("gpt-4o-mini (text, tools)").wait_for()
        main_row = row(page, "openai:main")
        assert await main_row.locator(".fingerprint").text_content() == main["key"]["fingerprint"]
        await main_row.get_by_role("button", name="Test").click()
        result = page.locator(".test-result")
        await result.filter(has_text="Test of openai:main: passed").wait_for()
        probes = await result.locator("li").evaluate_all("ls => ls.map(l => l.dataset.probe)")
        assert probes == ["test_auth", "list_models", "test_text"]
        await main_row.locator(".health .badge-ok").wait_for()

        # A duplicate name: a conflict, shown next to the name field; the typed key stays in its
        # field (as dots) for the corrected attempt, and the form is cleared once that succeeds.
        await form.get_by_label("Provider").select_option("openai")
        await form.get_by_label("Name").fill("main")
        await form.get_by_label("Base URL").fill(url)
        await form.get_by_label("API key").fill(CANARY_BACKUP)
        await form.get_by_role("button", name="Add connection").click()
        await form.locator(".field[data-param='name'] .error").filter(has_text="already exists").wait_for()
        await form.get_by_label("Name").fill("backup")
        await form.get_by_role("button", name="Add connection").click()
        await page.get_by_role("status").filter(has_text="Added openai:backup").wait_for()
        assert await form.get_by_label("API key").input_value() == ""
        states.append(await page_state(page))

        # Replace the key: a new fingerprint, and the test now passes with the new key only.
        emu.api_key = CANARY_NEW
        await main_row.get_by_role("button", name="Replace key").click()
        await page.get_by_label("New key for openai:main").fill(CANARY_NEW)
        await page.get_by_role("button", name="Save key").click()
        await page.get_by_role("status").filter(has_text="New key saved for openai:main").wait_for()
        states.append(await page_state(page))
        async with live.admin() as admin:
            replaced = (await admin.get(f"{api_path}/openai:main")).json()
        assert replaced["key"]["fingerprint"] != main["key"]["fingerprint"]
        assert await main_row.locator(".fingerprint").text_content() == replaced["key"]["fingerprint"]
        await main_row.get_by_role("button", name="Test").click()
        await page.get_by_role("status").filter(has_text="Test of openai:main passed").wait_for()

        # Two connections of one provider; move the second up; the order survives a reload.
        assert await profiles_in_page(page) == ["openai:main", "openai:backup"]
        await page.get_by_role("button", name="Move openai:backup up").click()
        await page.get_by_role("status").filter(has_text="openai:backup is now number 1").wait_for()
        assert await profiles_in_page(page) == ["openai:backup", "openai:main"]
        await page.reload()
        await row(page, "openai:main").wait_for()
        assert await profiles_in_page(page) == ["openai:backup", "openai:main"]
        async with live.admin() as admin:
            listed = (await admin.get(api_path)).json()
        assert [(c["profile_id"], c["position"]) for c in listed] == [
            ("openai:backup", 0),
            ("openai:main", 1),
        ]

        # Disable and enable again.
        await row(page, "openai:main").get_by_role("button", name="Disable").click()
        await row(page, "openai:main").locator(".badge-disabled").wait_for()
        await row(page, "openai:main").get_by_role("button", name="Enable").click()
        await row(page, "openai:main").locator(".badge-active").wait_for()

        # Revoke (confirmed): the key is destroyed, the record stays.
        await row(page, "openai:backup").get_by_role("button", name="Revoke").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_role("button", name="Revoke").click()
        await row(page, "openai:backup").locator(".badge-revoked").wait_for()
        await row(page, "openai:backup").get_by_text("key destroyed").wait_for()
        async with live.admin() as admin:
            assert (await admin.get(f"{api_path}/openai:backup")).json()["status"] == "revoked"

        # Delete: cancelling keeps it, confirming deletes it.
        await row(page, "openai:backup").get_by_role("button", name="Delete").click()
        await dialog.get_by_role("button", name="Cancel").click()
        await dialog.wait_for(state="hidden")
        assert await profiles_in_page(page) == ["openai:backup", "openai:main"]
        await row(page, "openai:backup").get_by_role("button", name="Delete").click()
        await dialog.get_by_role("button", name="Delete").click()
        await page.get_by_role("status").filter(has_text="openai:backup deleted").wait_for()
        assert await profiles_in_page(page) == ["openai:main"]
        async with live.admin() as admin:
            assert (await admin.get(f"{api_path}/openai:backup")).status_code == 404

        states.append(await page_state(page))
        received = await seen.texts()
    report = LeakReport()
    for i, state in enumerate(states):
        report.check_text(f"page DOM and storage, step {i}", state, CANARIES)
    for i, text in enumerate(received):
        report.check_text(f"response body or headers #{i}", text, CANARIES)
    report.check_text("server logs", logs.getvalue(), CANARIES)
    assert report.hits == []
    # The scan saw the connection responses and the server's log lines, not nothing.
    assert any(main["key"]["fingerprint"] in t for t in received)
    assert '"logger":"patchbay.access"' in logs.getvalue()
    assert seen.errors == []


def chain_editor(scope: Any, intent: str) -> Any:
    return scope.locator(f".chain-editor[data-intent='{intent}']")


async def add_to_chain(scope: Any, intent: str, ref: str) -> None:
    """Add `ref` to the intent's chain editor and wait until the preview calls it usable."""
    editor = chain_editor(scope, intent)
    await editor.get_by_label(f"Add a model to {intent}").fill(ref)
    await editor.get_by_role("button", name="Add", exact=True).click()
    await editor.locator(f"li[data-ref='{ref}'][data-state='usable']").wait_for()


async def chain_in_page(scope: Any, intent: str) -> list[str]:
    items = chain_editor(scope, intent).locator("li[data-ref]")
    return [str(r) for r in await items.evaluate_all("ls => ls.map(l => l.dataset.ref)")]


async def test_routing_matrix_and_agents(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    async with live.admin() as admin:
        for provider in ("openai", "mistral"):
            made = await admin.post(
                f"/orgs/{org_id}/connections", json={"provider": provider, "key": CANARY_BACKUP}
            )
            assert made.status_code == 201, made.text
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings").click()
    await page.get_by_role("heading", name="AI settings", level=1).wait_for()
    assert await page.get_by_role("link", name="AI settings").get_attribute("aria-current") == "page"

    routing = page.locator("form.routing")
    await add_to_chain(routing, "chat", "openai/gpt-4o-mini")
    await add_to_chain(routing, "chat", "mistral/mistral-small-latest")
    vision = chain_editor(routing, "vision")
    await vision.get_by_label("Add a model to vision").fill("not-a-ref")
    await vision.get_by_role("button", name="Add", exact=True).click()
    await vision.locator(".error").filter(has_text="not a model ref").wait_for()
    assert await vision.get_by_label("Add a model to vision").get_attribute("aria-invalid") == "true"
    assert await chain_in_page(routing, "vision") == []

    await add_to_chain(routing, "vision", "openai/gpt-4o")
    await routing.get_by_label("Default model").fill("openai/gpt-4o-mini")
    await routing.get_by_role("button", name="Save routing").click()
    await page.get_by_role("status").filter(has_text="Routing saved").wait_for()
    async with live.admin() as admin:
        saved = (await admin.get(f"/orgs/{org_id}/routing")).json()
    assert saved == {
        "default_model": "openai/gpt-4o-mini",
        "chains": {
            "chat": ["openai/gpt-4o-mini", "mistral/mistral-small-latest"],
            "vision": ["openai/gpt-4o"],
        },
        "allowed_models": None,
    }
    await page.reload()
    await chain_editor(routing, "chat").locator("li[data-state='usable']").nth(1).wait_for()
    assert await chain_in_page(routing, "chat") == ["openai/gpt-4o-mini", "mistral/mistral-small-latest"]

    # Agents: an invalid name is refused next to the field; create, edit, delete.
    agent_form = page.locator("form.agent-form")
    await agent_form.get_by_role("button", name="Create agent").click()
    await agent_form.locator(".field[data-param='name'] .error").filter(has_text=re.compile(".+")).wait_for()
    await agent_form.get_by_label("Name").fill("support")
    await add_to_chain(agent_form, "chat", "mistral/mistral-small-latest")
    await agent_form.get_by_role("button", name="Create agent").click()
    await page.get_by_role("status").filter(has_text="Agent support created").wait_for()
    support = page.locator("tr[data-agent='support']")
    await support.get_by_text("mistral/mistral-small-latest").wait_for()

    await support.get_by_role("button", name="Edit").click()
    await agent_form.get_by_label("Default model").fill("openai/gpt-4o")
    await (
        chain_editor(agent_form, "chat")
        .get_by_role("button", name="Remove mistral/mistral-small-latest")
        .click()
    )
    await add_to_chain(agent_form, "tools", "openai/gpt-4o")
    await agent_form.get_by_role("button", name="Save agent").click()
    await page.get_by_role("status").filter(has_text="Agent support saved").wait_for()
    async with live.admin() as admin:
        agents = (await admin.get(f"/orgs/{org_id}/agents")).json()
    assert [(a["name"], a["default_model"], a["chains"]) for a in agents] == [
        ("support", "openai/gpt-4o", {"tools": ["openai/gpt-4o"]})
    ]

    await support.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await page.get_by_role("status").filter(has_text="Agent support deleted").wait_for()
    async with live.admin() as admin:
        assert (await admin.get(f"/orgs/{org_id}/agents")).json() == []
    assert seen.errors == []


async def test_agent_voice_settings(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live)
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings").click()
    agent_form = page.locator("form.agent-form")
    await agent_form.get_by_label("Name").fill("ada")
    await agent_form.get_by_label("Voice", exact=True).fill("nova")
    await agent_form.get_by_label("Instructions").fill("You are Ada.\nYou book tables.")
    await agent_form.get_by_label("Language").fill("english")
    await agent_form.get_by_label("Output format").select_option("g711_ulaw")
    await agent_form.get_by_role("button", name="Create agent").click()
    language = agent_form.locator(".field[data-param='voice_settings.language']")
    await language.locator(".error").filter(has_text="not a language code").wait_for()
    assert await language.locator("input").get_attribute("aria-invalid") == "true"
    assert await page.evaluate("() => document.activeElement.name") == "language"

    await agent_form.get_by_label("Language").fill("en-gb")
    await agent_form.get_by_role("button", name="Create agent").click()
    await page.get_by_role("status").filter(has_text="Agent ada created").wait_for()
    summary = page.locator("tr[data-agent='ada'] dl.voice-summary")
    assert await summary.locator("dd").all_inner_texts() == [
        "nova",
        "en-GB",
        "G.711 µ-law, 8 kHz",
        "You are Ada. You book tables.",
    ]
    async with live.admin() as admin:
        [ada] = (await admin.get(f"/orgs/{org_id}/agents")).json()
    assert ada["voice_settings"] == {
        "voice": "nova",
        "instructions": "You are Ada.\nYou book tables.",
        "language": "en-GB",
        "output_format": "g711_ulaw",
    }

    # Editing shows what is saved; emptying a field clears that setting, the others stay.
    await page.reload()
    await page.locator("tr[data-agent='ada']").get_by_role("button", name="Edit").click()
    assert await agent_form.get_by_label("Voice", exact=True).input_value() == "nova"
    assert await agent_form.get_by_label("Instructions").input_value() == "You are Ada.\nYou book tables."
    assert await agent_form.get_by_label("Output format").input_value() == "g711_ulaw"
    await agent_form.get_by_label("Voice", exact=True).fill("")
    await agent_form.get_by_label("Output format").select_option("")
    await agent_form.get_by_role("button", name="Save agent").click()
    await page.get_by_role("status").filter(has_text="Agent ada saved").wait_for()
    assert await summary.locator("dt").all_inner_texts() == ["language", "instructions"]
    async with live.admin() as admin:
        [ada] = (await admin.get(f"/orgs/{org_id}/agents")).json()
    assert ada["voice_settings"] == {
        "voice": None,
        "instructions": "You are Ada.\nYou book tables.",
        "language": "en-GB",
        "output_format": None,
    }
    assert seen.errors == []


async def test_keyboard_only_reorder(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, _ = page_and_seen
    _, url = emulator
    org_id = await make_org(live)
    async with live.admin() as admin:
        for name in ("a", "b"):
            created = await admin.post(
                f"/orgs/{org_id}/connections",
                json={"provider": "openai", "name": name, "base_url": url, "key": CANARY_BACKUP},
            )
            assert created.status_code == 201
    await sign_in_with_link(page, live)
    await row(page, "openai:b").wait_for()
    await page.get_by_role("button", name="Move openai:a down").focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("status").filter(has_text="openai:a is now number 2").wait_for()
    # Focus stays with the moved connection, so it can be moved on from the keyboard.
    focused = await page.evaluate(
        "() => [document.activeElement.closest('tr').dataset.profile, document.activeElement.dataset.action]"
    )
    assert focused == ["openai:a", "up"]
    assert await profiles_in_page(page) == ["openai:b", "openai:a"]
