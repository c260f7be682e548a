"""The Usage page in real headless Chromium: recorded segments and their cost, shown as a table and a chart.

Usage is seeded the way the server records it (`UsageSegment`s through a usage recorder,
flushed to the database); the page reads it back through the admin API.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from billing.usage import Segment, UsageSegment, new_usage_recorder
from foundation.db import utcnow
from providers.contract import BillingSource
from providers.types import Usage
from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import make_org, sign_in_with_link

PLATFORM, BYOK, PRIVATE = BillingSource.PLATFORM, BillingSource.BYOK, BillingSource.PRIVATE
# (billing source, segment, how long ago, what it used)
SEEDS: tuple[tuple[BillingSource, Segment, timedelta, dict[str, Any]], ...] = (
    (BYOK, Segment.LLM, timedelta(hours=1), {"tokens": Usage(input_tokens=1_200, output_tokens=300)}),
    (BYOK, Segment.LLM, timedelta(hours=2), {"tokens": Usage(input_tokens=800, output_tokens=200)}),
    (
        PLATFORM,
        Segment.LLM,
        timedelta(hours=3),
        {"tokens": Usage(input_tokens=150, output_tokens=50), "cost_micro_usd": 1_500_001},
    ),
    (PLATFORM, Segment.STT, timedelta(hours=3), {"audio_seconds": 75.4, "cost_micro_usd": 25_000}),
    (
        PLATFORM,
        Segment.TTS,
        timedelta(hours=3),
        {"characters": 1_234, "audio_seconds": 4.2, "cost_micro_usd": 370_200},
    ),
    (BYOK, Segment.LLM, timedelta(days=3), {"tokens": Usage(input_tokens=10_000, output_tokens=1_000)}),
    (PLATFORM, Segment.LLM, timedelta(days=3), {"tokens": Usage(input_tokens=40, output_tokens=10)}),
    (PRIVATE, Segment.LLM, timedelta(days=20), {"tokens": Usage(input_tokens=5, output_tokens=5)}),
)
COLUMNS = [
    "Billing source",
    "Segment",
    "Segments",
    "Input tokens",
    "Output tokens",
    "Audio (min:sec)",
    "Characters",
    "Cost (USD)",
]


async def seed_usage(live: Live, org_id: str, now: datetime) -> None:
    recorder = new_usage_recorder(live.services.db.sessions)
    for source, segment, age, used in SEEDS:
        recorder.record(
            UsageSegment(
                org_id=org_id, segment=segment, provider="openai", billing_source=source, at=now - age, **used
            )
        )
    await recorder.flush()


def expected_bars(now: datetime, window: timedelta) -> dict[str, dict[str, int]]:
    """Segments per UTC day and billing source among the seeds inside `window`."""
    counts = Counter(
        ((now - age).date().isoformat(), source.value) for source, _, age, _ in SEEDS if age < window
    )
    bars: dict[str, dict[str, int]] = {}
    for (day, source), n in counts.items():
        bars.setdefault(day, {})[source] = n
    return bars


def days_of(answer: dict[str, Any]) -> list[str]:
    """Every UTC day the answer's window [since, until) touches."""
    first = datetime.fromisoformat(answer["since"]).date()
    last = (datetime.fromisoformat(answer["until"]) - timedelta(microseconds=1)).date()
    return [date.fromordinal(d).isoformat() for d in range(first.toordinal(), last.toordinal() + 1)]


async def table_rows(page: Any) -> list[list[str]]:
    rows = await page.locator("table.usage tr").evaluate_all(
        "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    return [[str(c) for c in r] for r in rows]


async def chart_bars(page: Any) -> dict[str, dict[str, int]]:
    """{day: {series: value}} for every bar group in the chart, empty days included."""
    groups = await page.locator("figure.chart g.day").evaluate_all(
        "gs => gs.map(g => [g.dataset.day, Object.fromEntries([...g.querySelectorAll('rect')].map(r => [r.dataset.series, Number(r.dataset.value)]))])"
    )
    return {str(day): {str(k): int(v) for k, v in bars.items()} for day, bars in groups}


def day_chart_response(window: str) -> Any:
    return lambda r: (
        "/usage?" in r.url and f"since={window}" in r.url and "group_by=day%2Cbilling_source" in r.url
    )


async def test_usage_table_chart_windows_and_empty_state(live: Live, page_and_seen: tuple[Any, Seen]) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live, "acme")
    await make_org(live, "quiet")
    now = utcnow()
    await seed_usage(live, org_id, now)
    await sign_in_with_link(page, live)
    assert await page.get_by_label("Organisation").input_value() == org_id

    async with page.expect_response(day_chart_response("24h")) as first:
        await page.get_by_role("link", name="Usage").click()
    await page.get_by_role("heading", name="Usage", level=1).wait_for()
    assert await page.get_by_role("link", name="Usage").get_attribute("aria-current") == "page"
    assert await page.get_by_label("Window").input_value() == "24h"
    await page.locator("table.usage").wait_for()

    # byok and platform apart, per segment, in a fixed order; audio as minutes:seconds.
    assert await table_rows(page) == [
        COLUMNS,
        ["platform", "llm", "1", "150", "50", "0:00", "0", "$1.500001"],
        ["platform", "stt", "1", "0", "0", "1:15", "0", "$0.025"],
        ["platform", "tts", "1", "0", "0", "0:04", "1,234", "$0.3702"],
        ["byok", "llm", "2", "2,000", "500", "0:00", "0", "$0.00"],
        ["Total", "5", "2,150", "550", "1:20", "1,234", "$1.895201"],
    ]
    assert await page.locator("tfoot td[data-measure=audio_seconds] data").get_attribute("value") == "79.6"
    # Cost is exact: the integer micro-USD the API sent, and its digits as they are.
    assert (
        await page.locator("tfoot td[data-measure=cost_micro_usd] data").get_attribute("value") == "1895201"
    )

    # One bar group per UTC day of the window, stacked by billing source, with a legend.
    chart = page.locator("figure.chart")
    answer = await (await first.value).json()
    bars = await chart_bars(page)
    assert list(bars) == days_of(answer)
    assert {day: b for day, b in bars.items() if b} == expected_bars(now, timedelta(hours=24))
    assert await chart.locator(".legend li").all_text_contents() == ["platform", "byok"]
    image = chart.get_by_role("img", name="Segments per UTC day by billing source, last 24 hours")
    assert "5 segments in all: platform 3, byok 2" in str(await image.locator("desc").text_content())

    # Another window: a new request, and the older byok segment joins the table and the chart.
    async with page.expect_response(day_chart_response("7d")) as week:
        await page.get_by_label("Window").select_option("7d")
    await page.get_by_role("status").filter(has_text="Last 7 days: 7 segments").wait_for()
    rows = await table_rows(page)
    assert rows[1] == ["platform", "llm", "2", "190", "60", "0:00", "0", "$1.500001"]
    assert rows[4] == ["byok", "llm", "3", "12,000", "1,500", "0:00", "0", "$0.00"]
    bars = await chart_bars(page)
    assert list(bars) == days_of(await (await week.value).json())
    assert len(bars) >= 7
    assert {day: b for day, b in bars.items() if b} == expected_bars(now, timedelta(days=7))
    # Three days ago both sources were used: byok's bar stands on platform's.
    stack = page.locator(
        f"figure.chart g.day[data-day='{(now - timedelta(days=3)).date().isoformat()}'] rect"
    )
    # The attributes as written (double precision), not the SVG DOM's float32 baseVal, whose
    # rounding alone can differ by 1e-5 at these coordinates.
    lower, upper = await stack.evaluate_all(
        "rs => rs.map(r => [r.dataset.series, r.getAttribute('y'), r.getAttribute('height')])"
    )
    assert (lower[0], upper[0]) == ("platform", "byok")
    assert abs(float(upper[1]) + float(upper[2]) - float(lower[1])) < 1e-9

    async with page.expect_response(day_chart_response("30d")):
        await page.get_by_label("Window").select_option("30d")
    await page.get_by_role("status").filter(has_text="Last 30 days: 8 segments").wait_for()
    assert await chart.locator(".legend li").all_text_contents() == ["platform", "byok", "private"]
    assert {day: b for day, b in (await chart_bars(page)).items() if b} == expected_bars(
        now, timedelta(days=30)
    )

    # A refusal shows the API's own message, and no stale figures stay. (The select offers
    # only valid windows; an option added here makes the real server refuse one.)
    await page.get_by_label("Window").evaluate("s => s.add(new Option('Since last tuesday', 'last tuesday'))")
    await page.get_by_label("Window").select_option("last tuesday")
    alert = page.locator("form.usage-window .form-error[role=alert]")
    await alert.filter(
        has_text="since must be an ISO 8601 time or a span such as 24h or 7d, not 'last tuesday'"
    ).wait_for()
    assert await page.locator("table.usage, figure.chart").count() == 0
    await page.get_by_label("Window").select_option("7d")
    await page.locator("table.usage").wait_for()
    assert await alert.text_content() == ""

    # An org with no usage: the empty state, for the window chosen before.
    async with page.expect_response(day_chart_response("7d")):
        await page.get_by_label("Organisation").select_option(label="quiet")
    await page.get_by_text("No usage in this window.").wait_for()
    assert await page.locator("table.usage, figure.chart").count() == 0
    assert seen.errors == []
