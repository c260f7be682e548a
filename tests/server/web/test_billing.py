"""The Billing page in real headless Chromium: credits, holds, grants (granted from the page by the
operator), cost by source / provider / agent with its chart, the ledger a page at a time; the
empty, loading and failure states; and who is shown the page at all.

Credits are seeded through the server's own ledger and usage through a usage recorder, as the
request path writes them; the page reads them back through the admin API.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from billing.ledger_query import list_entries
from billing.usage import Segment, UsageSegment, new_usage_recorder
from foundation.db import utcnow
from providers.contract import BillingSource
from providers.types import Usage
from tests.server.web.conftest import TIMEOUT_MS, Live, Seen
from tests.server.web.people import ui_origin
from tests.server.web.test_journeys import make_org, sign_in_with_link
from tests.server.web.test_usage import chart_bars, days_of

PLATFORM, BYOK, PRIVATE = BillingSource.PLATFORM, BillingSource.BYOK, BillingSource.PRIVATE
# (billing source, provider, agent?, how long ago, cost in micro-USD)
COSTS: tuple[tuple[BillingSource, str, bool, timedelta, int], ...] = (
    (PLATFORM, "openai", True, timedelta(hours=1), 1_250_000),
    (PLATFORM, "anthropic", False, timedelta(days=2), 500_001),
    (BYOK, "openai", True, timedelta(days=2), 10_000),
    (PRIVATE, "local", False, timedelta(hours=2), 0),
    (PLATFORM, "openai", False, timedelta(days=45), 9_000_000),  # outside 30 days
)
GRANTS = 26  # one more than a ledger page, with the hold, settle and the open hold: 29 entries


async def seed(live: Live, org_id: str, agent_id: str, now: datetime) -> str:
    ledger = live.services.ledger
    for i in range(GRANTS):
        await ledger.grant(org_id, 1_000_000, f"seed-{i}", "welcome" if i == 0 else None)
    done = await ledger.hold(org_id, 300_000, "h-done", details={"segment": "llm", "intent": "chat"})
    await ledger.settle(done.id, 120_000, "s-done", org_id=org_id)
    held = await ledger.hold(org_id, 700_000, "h-open", details={"segment": "tts", "intent": "voice_turn"})
    recorder = new_usage_recorder(live.services.db.sessions)
    for source, provider, agent, age, cost in COSTS:
        recorder.record(
            UsageSegment(
                org_id=org_id,
                segment=Segment.LLM,
                provider=provider,
                billing_source=source,
                agent_id=agent_id if agent else None,
                tokens=Usage(input_tokens=10, output_tokens=5),
                cost_micro_usd=cost,
                at=now - age,
            )
        )
    await recorder.flush()
    return held.id


async def figures(page: Any) -> dict[str, str]:
    found = await page.locator("dl.figures .figure").evaluate_all(
        "fs => fs.map(f => [f.dataset.figure, f.querySelector('dd').textContent])"
    )
    return {str(k): str(v) for k, v in found}


async def rows(page: Any, selector: str) -> list[list[str]]:
    """The cells' text of the rows `selector` names (a table or section: each of its rows)."""
    if not selector.split()[-1].startswith("tr"):
        selector += " tr"
    found = await page.locator(selector).evaluate_all(
        "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    return [[str(c) for c in r] for r in found]


def expected_bars(now: datetime, key: Any) -> dict[str, dict[str, int]]:
    bars: dict[str, dict[str, int]] = defaultdict(dict)
    for source, provider, agent, age, cost in COSTS:
        if age < timedelta(days=30) and cost:
            day, series = (now - age).date().isoformat(), key(source, provider, agent)
            bars[day][series] = bars[day].get(series, 0) + cost
    return dict(bars)


async def open_billing(page: Any) -> None:
    await page.get_by_role("link", name="Billing").click()
    await page.get_by_role("heading", name="Billing", level=1).wait_for()
    await page.locator("section.ledger table.ledger, section.ledger p.empty").first.wait_for()
    await page.locator(".cost-results table.costs, .cost-results p.empty").first.wait_for()
    await page.locator("dl.figures .figure").first.wait_for()  # the credits section, loaded on its own


async def test_the_operator_reads_grants_and_pages_the_billing_page(
    live: Live, page_and_seen: tuple[Any, Seen]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live, "acme")
    await make_org(live, "quiet")
    async with live.admin() as admin:
        made = await admin.post(f"/orgs/{org_id}/agents", json={"name": "support", "chains": {}})
        assert made.status_code == 201, made.text
    now = utcnow()
    hold_id = await seed(live, org_id, made.json()["id"], now)
    await sign_in_with_link(page, live)
    async with page.expect_response(lambda r: "/billing/costs?" in r.url) as first:
        await open_billing(page)
    assert await page.get_by_role("link", name="Billing").get_attribute("aria-current") == "page"

    # Credits: 26 granted, 0.12 charged, 0.70 held.
    assert await figures(page) == {"balance": "$25.88", "held": "$0.70", "available": "$25.18"}
    [hold] = await rows(page, "table.holds tbody")
    assert hold[:3] == [hold_id, "tts · voice_turn", "$0.70"]

    # Grants, newest first (ten shown), the first one's reason kept.
    assert await page.locator("table.grants tbody tr").count() == 10

    # Cost by billing source over the last 30 days: table largest first, bars per UTC day.
    assert await page.get_by_label("Window").input_value() == "30d"
    assert await rows(page, "table.costs") == [
        ["Billing source", "Segments", "Cost"],
        ["platform", "2", "$1.750001"],
        ["byok", "1", "$0.01"],
        ["private", "1", "$0.00"],
        ["Total", "4", "$1.760001"],
    ]
    assert await page.locator(".cost-total data").get_attribute("value") == "1760001"
    bars = await chart_bars(page)
    assert list(bars) == days_of(await (await first.value).json())
    assert {day: b for day, b in bars.items() if b} == expected_bars(now, lambda s, p, a: s.value)
    chart = page.locator("section.costs figure.chart")
    assert await chart.locator(".legend li").all_text_contents() == ["platform", "byok", "private"]
    image = chart.get_by_role("img", name="Cost per UTC day by billing source, last 30 days")
    assert "$1.760001 charged in all: platform $1.750001, byok $0.01, private $0.00" in str(
        await image.locator("desc").text_content()
    )

    # By provider, then by agent: each its own colour, named, in the table and the legend.
    async with page.expect_response(lambda r: "by=provider" in r.url):
        await page.get_by_label("Cost by").select_option("provider")
    await page.get_by_role("status").filter(has_text="Last 30 days by provider: $1.760001").wait_for()
    assert [r[0] for r in await rows(page, "table.costs tbody")] == ["openai", "anthropic", "local"]
    assert await chart.locator(".legend li").all_text_contents() == ["openai", "anthropic", "local"]
    assert {day: b for day, b in (await chart_bars(page)).items() if b} == expected_bars(
        now, lambda s, p, a: {"openai": "c0", "anthropic": "c1", "local": "c2"}[p]
    )
    async with page.expect_response(lambda r: "by=agent" in r.url):
        await page.get_by_label("Cost by").select_option("agent")
    await page.get_by_role("status").filter(has_text="by agent").wait_for()
    assert await rows(page, "table.costs tbody") == [
        ["support", "2", "$1.26"],
        ["(no agent)", "2", "$0.500001"],
    ]
    async with page.expect_response(lambda r: "since=90d" in r.url):
        await page.get_by_label("Window").select_option("90d")
    await page.get_by_role("status").filter(has_text="Last 90 days by agent: $10.760001").wait_for()

    # The ledger: 25 newest first, then the rest on asking.
    ledger = page.locator("table.ledger tbody tr")
    assert await ledger.count() == 25
    assert await ledger.evaluate_all("rs => rs.slice(0, 3).map(r => r.dataset.kind)") == [
        "hold",
        "settle",
        "hold",
    ]
    [settle] = await rows(page, "table.ledger tbody tr[data-kind=settle]")
    assert (
        settle[1:4] == ["Charge", "$0.12", "-$0.12"] and settle[4].startswith("hld_") and settle[4] != hold_id
    )
    await page.get_by_role("button", name="Show older entries").click()
    await page.get_by_role("status").filter(has_text="29 entries shown.").wait_for()
    assert await page.get_by_role("button", name="Show older entries").count() == 0
    assert await ledger.last.evaluate("r => r.cells[5].textContent") == "welcome"

    # "Download CSV": the ledger as `patchbay ledger --csv` writes it, one row per entry, oldest first.
    async with page.expect_download() as saved:
        await page.get_by_role("button", name="Download CSV").click()
    download = await saved.value
    assert download.suggested_filename.startswith("ledger-") and download.suggested_filename.endswith(".csv")
    text = await asyncio.to_thread(Path(str(await download.path())).read_text)
    async with live.admin() as admin:
        api_csv = await admin.get(f"/orgs/{org_id}/billing/ledger", params={"since": "365d", "format": "csv"})
    assert text == api_csv.text
    async with live.services.db.session() as s:
        written = await list_entries(s, org_id)
    downloaded = list(csv.DictReader(io.StringIO(text)))
    assert [(r["id"], r["kind"], int(r["amount_micro_usd"])) for r in downloaded] == [
        (e.id, e.kind.value, e.amount) for e in written
    ]
    assert len(downloaded) == GRANTS + 3
    await page.get_by_role("status").filter(has_text="Ledger downloaded as CSV").wait_for()

    # Grant from the page: a bad amount is refused beside its field; a good one shows at once.
    form = page.locator("form.grant-form")
    await form.get_by_label("Amount (USD)").fill("1.0000001")
    await form.get_by_role("button", name="Grant credits").click()
    await (
        form.locator(".field[data-param=amount] .error")
        .filter(has_text="more precision than a micro-dollar")
        .wait_for()
    )
    await form.get_by_label("Amount (USD)").fill("12.5")
    await form.get_by_label("Reason").fill("pilot")
    await form.get_by_role("button", name="Grant credits").click()
    await page.get_by_role("status").filter(has_text="Granted: $12.50. Available now $37.68.").wait_for()
    await page.locator("dl.figures [data-figure=balance] dd").filter(has_text="$38.38").wait_for()
    # The sections refresh on their own after a grant: wait for the grants table's new row.
    await page.locator("table.grants tbody tr:first-child").filter(has_text="pilot").wait_for()
    [newest] = await rows(page, "table.grants tbody tr:first-child")
    assert newest[1:] == ["$12.50", "pilot"]
    await page.locator("table.ledger tbody tr:first-child[data-kind=grant]").wait_for()
    assert await form.get_by_label("Amount (USD)").input_value() == ""
    assert (await live.services.ledger.balance(org_id)).balance == 38_380_000

    # Another org with nothing yet: every section's empty state.
    await page.get_by_label("Organisation").select_option(label="quiet")
    await page.get_by_text("No ledger entries in the last year").wait_for()
    await page.get_by_text("No usage in this window, so nothing was charged.").wait_for()
    # The credits section loads on its own: wait for its figures before reading them.
    await page.locator("dl.figures [data-figure=balance] dd").filter(has_text="$0.00").wait_for()
    assert await figures(page) == {"balance": "$0.00", "held": "$0.00", "available": "$0.00"}
    await page.get_by_text("No open holds: nothing is reserved right now.").wait_for()
    await page.get_by_text("No credits granted yet.").wait_for()
    assert await page.locator("table.costs, figure.chart, table.ledger").count() == 0
    assert seen.errors == []


async def test_loading_and_failure_states(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    await make_org(live, "acme")
    await sign_in_with_link(page, live)
    # The balance answers only when the test lets it: the section shows it is loading meanwhile.
    release = asyncio.Event()
    failing = {"on": True}

    async def slow_balance(route: Any) -> None:
        await release.wait()
        if failing["on"]:
            await route.fulfill(
                status=500,
                content_type="application/json",
                body='{"error": {"type": "internal_error", "message": "the database is away"}}',
            )
        else:
            await route.continue_()

    async def failing_costs(route: Any) -> None:
        await route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"type": "unavailable", "message": "costs are resting"}}',
        )

    await page.route(lambda url: "/billing/balance" in url, slow_balance)
    await page.route(lambda url: "/billing/costs" in url, failing_costs)
    await page.get_by_role("link", name="Billing").click()
    credits = page.locator("section.credits")
    await credits.get_by_text("Loading…").wait_for()
    assert await credits.get_attribute("aria-busy") == "true"
    release.set()
    await (
        credits.get_by_role("alert")
        .filter(has_text="Could not load credits: the database is away")
        .wait_for()
    )
    await page.locator("form.cost-window .form-error").filter(has_text="costs are resting").wait_for()
    # The other sections are shown all the same.
    await page.get_by_text("No ledger entries in the last year").wait_for()
    failing["on"] = False
    await credits.get_by_role("button", name="Try again").click()
    await page.locator("dl.figures").wait_for()
    assert await credits.get_attribute("aria-busy") is None
    assert [e for e in seen.errors if "500" not in e and "503" not in e] == []


async def test_only_roles_that_read_billing_see_the_page_and_only_the_operator_grants(
    live: Live, browser: Any
) -> None:
    org_id = await make_org(live, "acme")
    await live.services.ledger.grant(org_id, 5_000_000, "seed")
    tokens = {}
    async with live.admin() as admin:
        for role in ("billing", "owner", "admin", "viewer"):
            made = await admin.post(f"/orgs/{org_id}/admin-tokens", json={"role": role, "name": role})
            assert made.status_code == 201, made.text
            tokens[role] = made.json()["token"]
    context = await browser.new_context(locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        for role, token in tokens.items():
            page = await context.new_page()
            await page.goto(ui_origin(live) + "/ui/")
            await page.get_by_text("Sign in with an admin token instead").click()
            await page.get_by_label("Admin token").fill(token)
            await page.get_by_role("button", name="Sign in with the token").click()
            await page.get_by_role("heading", name="AI Connections", level=1).wait_for()
            link = page.get_by_role("link", name="Billing")
            if role in ("billing", "owner"):
                await open_billing(page)
                assert await figures(page) == {"balance": "$5.00", "held": "$0.00", "available": "$5.00"}
                assert await page.locator("form.grant-form").count() == 0, role
                assert await page.get_by_role("button", name="Grant credits").count() == 0
                await page.get_by_text("Credits the server's operator gave this org.").wait_for()
            else:
                assert await link.count() == 0 or not await link.is_visible(), role
                await page.goto(ui_origin(live) + "/ui/#/billing")
                await page.get_by_text(f"Your role in acme ({role}) cannot see this page.").wait_for()
                assert await page.locator("dl.figures").count() == 0
            await page.evaluate("() => sessionStorage.clear()")
            await page.close()
    finally:
        await context.close()
