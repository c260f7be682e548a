"""Helpers for the people tests: invites made as the operator, accepted in the page or over HTTP.

The UI is reached as `http://localhost:<port>`: the session cookie is Secure, and Chromium sends
Secure cookies to `localhost` over plain HTTP (a secure context), as it would over HTTPS.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.web.conftest import Live

PASSWORD = "correct horse battery staple"
EMULATOR_TEXT = "Hello! How can I help you today?"


def ui_origin(live: Live) -> str:
    return live.url.replace("127.0.0.1", "localhost")


async def invite(live: Live, org_id: str, email: str, role: str) -> str:
    """The invite link (a path: the test server has no PATCHBAY_PUBLIC_URL), made as the operator."""
    async with live.admin() as admin:
        made = await admin.post(f"/orgs/{org_id}/invites", json={"email": email, "role": role})
    assert made.status_code == 201, made.text
    link = str(made.json()["link"])
    assert link.startswith("/ui/#invite=pbi-")
    return link


async def accept_in_page(page: Any, live: Live, link: str, *, password: str = PASSWORD) -> None:
    """Open the invite link, choose a password (twice), and land in the app."""
    await page.goto(ui_origin(live) + link)
    await page.get_by_text("You are invited to join").wait_for()
    assert "pbi-" not in page.url  # the secret left the address bar at once
    await page.get_by_label("Choose a password").fill(password)
    await page.get_by_label("Confirm the password").fill(password)
    await page.get_by_role("button", name="Create account and join").click()
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()


async def person(live: Live, org_id: str, email: str, role: str) -> None:
    """An account with `role` in the org, made over HTTP (invite, then accept) for tests about other things."""
    link = await invite(live, org_id, email, role)
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        accepted = await client.post(
            "/auth/invite/accept", json={"token": link.split("#invite=", 1)[1], "password": PASSWORD}
        )
    assert accepted.status_code == 200, accepted.text


async def sign_in_with_password(page: Any, live: Live, email: str, password: str = PASSWORD) -> None:
    await page.goto(ui_origin(live) + "/ui/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def add_connection_via_api(live: Live, org_id: str, base_url: str, models: list[str]) -> None:
    async with live.admin() as admin:
        made = await admin.post(
            f"/orgs/{org_id}/connections",
            json={
                "provider": "openai",
                "name": "main",
                "base_url": base_url,
                "key": "sk-test-upstream",
                "models": models,
            },
        )
    assert made.status_code == 201, made.text
