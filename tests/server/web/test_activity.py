"""The Activity page in real headless Chromium: a request the test made through the openai SDK,
failed upstream, shows with its route trace; the audit log shows who changed what; an owner
turns content logging on.

The server's request log is swapped for one the test can follow (tests/server/activity/recorded.py):
each request's entry is handed over as the request ends and written when the test flushes, so
the page reads exactly the rows the test waited for, with no polling.
"""

from __future__ import annotations

from typing import Any

import openai

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai_wire import fail
from tests.server.activity.recorded import install
from tests.server.web.conftest import Live, Seen
from tests.server.web.people import EMULATOR_TEXT, add_connection_via_api, person, sign_in_with_password
from tests.server.web.test_journeys import make_org

REFUSAL = {"error": {"message": "this model refuses everything", "type": "invalid_request_error"}}


async def show(page: Any, button: str, path: str, query: str, **selects: str) -> None:
    """Choose the filters, press `button`, and wait until the answer it asked for is in the page."""
    for label, value in selects.items():
        await page.get_by_label(label.capitalize()).select_option(value)
    async with page.expect_response(lambda r: path in r.url and query in r.url) as answered:
        await page.get_by_role("button", name=button).click()
    assert (await answered.value).ok
    shown = page.locator("[role=tabpanel]:not([hidden])")
    await shown.locator("table.requests tr.request, table.audit tbody tr, p.empty").first.wait_for()


async def cells(row: Any) -> list[str]:
    return [str(c).strip() for c in await row.locator("td").all_inner_texts()]


async def test_a_failed_request_shows_with_its_route_trace(
    live: Live, page_and_seen: tuple[Any, Seen], emulator: tuple[OpenAIEmulator, str]
) -> None:
    page, seen = page_and_seen
    emu, url = emulator
    emu.api_key = None
    emu.always(fail(400, REFUSAL), model="gpt-broken")
    try:
        org_id = await make_org(live)
        await add_connection_via_api(live, org_id, url, ["gpt-4o-mini", "gpt-broken"])
        async with live.admin() as admin:
            made = await admin.post(f"/orgs/{org_id}/api-keys", json={"name": "app"})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        log = await install(live.services)

        # One request served, one refused upstream (a 400: no retry, no fallback).
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0) as client:
            served = await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert served.choices[0].message.content == EMULATOR_TEXT
            try:
                await client.chat.completions.create(
                    model="openai/gpt-broken", messages=[{"role": "user", "content": "hi"}]
                )
            except openai.BadRequestError:
                pass
            else:
                raise AssertionError("the emulator's refusal did not reach the caller")
        await log.next()
        await log.next()
        await log.flush()
    finally:
        emu.reset()

    await person(live, org_id, "owner@example.com", "owner")
    await sign_in_with_password(page, live, "owner@example.com")
    await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
    await page.get_by_role("link", name="Activity", exact=True).click()
    await page.get_by_role("heading", name="Activity", level=1).wait_for()
    assert await page.get_by_role("tab", name="Requests").get_attribute("aria-selected") == "true"
    requests = page.locator("table.requests tr.request")
    await requests.nth(1).wait_for()
    assert await requests.count() == 2

    # Only failures: the refused request, with its key, model, status and error.
    await show(page, "Show requests", "/requests?", "status=error", status="error")
    [failed] = await requests.all()
    time, key_name, model, status, error, _latency, connection, _tokens, _route = await cells(failed)
    assert time and key_name == "app"
    assert model.startswith("openai/gpt-broken")
    assert status == "400 error"
    assert error.split("\n")[-1] == "invalid_request"
    assert connection == "none"

    # Its route trace: the one attempt, on openai:main, failed with the upstream's 400.
    await failed.get_by_role("button", name="Show route").click()
    trace = page.locator("tr.detail .trace")
    await trace.wait_for()
    assert "Served by\nnothing" in await trace.locator("dl").inner_text()
    [attempt] = await trace.locator("table.attempts tbody tr").all()
    assert (await cells(attempt))[1:6] == [
        "openai/gpt-broken",
        "openai:main",
        "failed:invalid_request",
        "invalid_request",
        "400",
    ]
    assert await failed.get_by_role("button", name="Hide route").get_attribute("aria-expanded") == "true"

    # Only successes: the served one, with its connection and tokens.
    await show(page, "Show requests", "/requests?", "status=ok", status="ok")
    [ok] = await requests.all()
    _, _, _, status, error, latency, connection, tokens, _ = await cells(ok)
    assert (status, error, connection) == ("200 ok", "", "openai:main")
    assert latency.endswith(" ms") and tokens != "—"

    # Content logging is off, and the owner may turn it on (confirmed); the audit log records it.
    logging = page.locator(".content-logging")
    assert "never prompts or completions" in await logging.inner_text()
    await logging.get_by_role("button", name="Turn content logging on").click()
    await page.get_by_role("dialog").get_by_role("button", name="Turn on").click()
    await logging.get_by_role("status").filter(has_text="Content logging is on").wait_for()
    await logging.get_by_role("button", name="Turn content logging off").wait_for()

    await page.get_by_role("tab", name="Audit log").click()
    audit = page.locator("table.audit")
    await audit.wait_for()
    actions = await audit.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.event)")
    assert {"org.content_logging", "apikey.create", "member.join", "connection.create"} <= set(actions), (
        actions
    )
    content_row = audit.locator("tr[data-event='org.content_logging']")
    _when, who, credential, _address, action, _target, _details = await cells(content_row)
    assert (who, action) == ("owner@example.com", "org.content_logging") and credential
    await page.get_by_label("Action").fill("apikey")
    await show(page, "Show events", "/audit?", "action=apikey")
    assert set(await audit.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.event)")) == {
        "apikey.create"
    }
    assert seen.errors == []
