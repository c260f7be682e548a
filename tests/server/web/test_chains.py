"""The fallback-chain editor on the AI settings page (real Chromium, issue 15): a chain is
reordered from the keyboard alone, a model the org's tier does not allow is refused with its
reason in plain words, and the next chat request through /v1 with an API key follows the
saved chain."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import chain_editor, chain_in_page, make_org, sign_in_with_link

REFUSAL = (
    "Cannot add mylab/llama: not allowed on the starter tier: private endpoints (openai_compatible:mylab) "
    "need the pro tier or above."
)


async def setup(live: Live, url: str) -> tuple[str, str]:
    """An org moved from pro down to starter: its private endpoint is kept but may not be used."""
    org_id = await make_org(live)  # on pro
    async with live.admin() as admin:
        own = {
            "provider": "openai",
            "name": "main",
            "base_url": url,
            "key": "sk-test-0000",
            "models": ["gpt-4o-mini", "gpt-4o"],
        }
        lab = {"provider": "openai_compatible", "name": "mylab", "base_url": url, "models": ["llama"]}
        for body in (own, lab):
            made = await admin.post(f"/orgs/{org_id}/connections", json=body)
            assert made.status_code == 201, made.text
        routed = await admin.put(
            f"/orgs/{org_id}/routing", json={"chains": {"chat": ["openai/gpt-4o-mini", "openai/gpt-4o"]}}
        )
        assert routed.status_code == 200, routed.text
        assert (await admin.patch(f"/orgs/{org_id}", json={"tier": "starter"})).status_code == 200
        # Starter charges a BYOK surcharge: the request needs credits to hold.
        granted = await admin.post(
            f"/orgs/{org_id}/billing/grants", json={"amount": "5"}, headers={"Idempotency-Key": "chains-1"}
        )
        assert granted.status_code in (200, 201), granted.text
        issued = await admin.post(f"/orgs/{org_id}/api-keys", json={"name": "ci"})
        assert issued.status_code == 201, issued.text
    return org_id, str(issued.json()["key"])


async def test_reorder_by_keyboard_refuse_with_reason_and_the_next_request_follows(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    emu, url = emulator
    emu.reset()
    org_id, key = await setup(live, url)
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings", exact=True).click()
    routing = page.locator("form.routing")
    chat = chain_editor(routing, "chat")
    await chat.locator("li[data-ref='openai/gpt-4o'][data-state='usable']").wait_for()
    assert "usable: openai:main" in await chat.locator("li[data-ref='openai/gpt-4o']").inner_text()

    # Keyboard only: focus the entry, Alt+ArrowUp moves it; focus stays with it, the move is spoken.
    await chat.locator("li[data-ref='openai/gpt-4o']").focus()
    await page.keyboard.press("Alt+ArrowUp")
    await page.get_by_role("status").filter(has_text="openai/gpt-4o is now number 1 of 2 in chat").wait_for()
    assert await page.evaluate("() => document.activeElement.dataset.ref") == "openai/gpt-4o"
    assert await chain_in_page(routing, "chat") == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    await page.keyboard.press("Alt+ArrowUp")
    await page.get_by_role("status").filter(has_text="openai/gpt-4o is already first in chat").wait_for()
    # The Move buttons do the same, for those who tab to them.
    await chat.get_by_role("button", name="Move openai/gpt-4o-mini up").focus()
    await page.keyboard.press("Enter")
    await (
        page.get_by_role("status")
        .filter(has_text="openai/gpt-4o-mini is now number 1 of 2 in chat")
        .wait_for()
    )
    await page.keyboard.press("Tab")  # from "Move up" to "Move down" of the same entry
    await page.keyboard.press("Enter")
    await (
        page.get_by_role("status")
        .filter(has_text="openai/gpt-4o-mini is now number 2 of 2 in chat")
        .wait_for()
    )
    assert await chain_in_page(routing, "chat") == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    await chat.locator(".chain-summary").filter(has_text="Requests try openai/gpt-4o first.").wait_for()

    # The private endpoint is offered (the org can reach it) but refused, with why and which tier allows it.
    add = chat.get_by_label("Add a model to chat")
    await add.focus()
    option = chat.locator("datalist option[value='mylab/llama']")
    await option.wait_for(state="attached")
    assert "not allowed on the starter tier" in str(await option.get_attribute("label"))
    await add.fill("mylab/llama")
    await page.keyboard.press("Enter")
    await chat.locator(".error").filter(has_text=REFUSAL).wait_for()
    assert await add.get_attribute("aria-invalid") == "true"
    assert await chain_in_page(routing, "chat") == ["openai/gpt-4o", "openai/gpt-4o-mini"]

    await routing.get_by_role("button", name="Save routing").click()
    await page.get_by_role("status").filter(has_text="Routing saved").wait_for()
    async with live.admin() as admin:
        saved = (await admin.get(f"/orgs/{org_id}/routing")).json()
        preview = (await admin.get(f"/orgs/{org_id}/routing/preview", params={"intent": "chat"})).json()
    assert saved["chains"] == {"chat": ["openai/gpt-4o", "openai/gpt-4o-mini"]}
    assert (preview["source"], preview["first"]) == ("org:chat", "openai/gpt-4o")

    async with httpx.AsyncClient(
        base_url=live.url + "/v1", headers={"authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        reply = await client.post(
            "/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-patchbay-model"] == "openai/gpt-4o"
    assert [r.json["model"] for r in emu.chat_requests] == ["gpt-4o"]
    assert seen.errors == []


async def test_reorder_by_dragging_and_remove(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    _, url = emulator
    org_id, _ = await setup(live, url)
    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="AI settings", exact=True).click()
    routing = page.locator("form.routing")
    chat = chain_editor(routing, "chat")
    await chat.locator("li[data-ref='openai/gpt-4o'][data-state='usable']").wait_for()
    await chat.locator("li[data-ref='openai/gpt-4o']").drag_to(
        chat.locator("li[data-ref='openai/gpt-4o-mini']"), target_position={"x": 10, "y": 2}
    )
    await page.get_by_role("status").filter(has_text="openai/gpt-4o is now number 1 in chat").wait_for()
    assert await chain_in_page(routing, "chat") == ["openai/gpt-4o", "openai/gpt-4o-mini"]

    await chat.get_by_role("button", name="Remove openai/gpt-4o-mini").click()
    await page.get_by_role("status").filter(has_text="Removed openai/gpt-4o-mini from chat").wait_for()
    await routing.get_by_role("button", name="Save routing").click()
    await page.get_by_role("status").filter(has_text="Routing saved").wait_for()
    async with live.admin() as admin:
        assert (await admin.get(f"/orgs/{org_id}/routing")).json()["chains"] == {"chat": ["openai/gpt-4o"]}
    assert seen.errors == []
