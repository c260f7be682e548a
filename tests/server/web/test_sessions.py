"""People's sessions in real headless Chromium: a cross-site form post is refused (CSRF), a
wrong password is refused, and "Sign out everywhere" ends the session of another browser.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tests.emulators.harness import ServedApp
from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.people import PASSWORD, person, sign_in_with_password, ui_origin
from tests.server.web.test_journeys import make_org


class CrossSite:
    """Another site (`http://127.0.0.1:<port>`) whose page posts a form to the UI's origin at once."""

    def __init__(self, target: str, fields: dict[str, str]) -> None:
        inputs = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
        )
        self.page = (
            '<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="POST" action="{target}" enctype="text/plain">{inputs}</form></body></html>'
        ).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
        )
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
    # Signing in again elsewhere in this browser opens a new session (a new cookie and CSRF token);
    # this tab's next change still goes through, with the new session's token.
    again = await page.context.request.post(
        ui_origin(live) + "/auth/login", data={"email": "owner@example.com", "password": PASSWORD}
    )
    assert again.ok
    await agent_form.get_by_label("Name").fill("better")
    await agent_form.get_by_role("button", name="Create agent").click()
    await page.get_by_role("status").filter(has_text="Agent better created").wait_for()
    async with live.admin() as admin:
        agents = (await admin.get(f"/orgs/{org_id}/agents")).json()
    assert sorted(a["name"] for a in agents) == ["better", "good"]
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
