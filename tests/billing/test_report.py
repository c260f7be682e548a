"""Usage summaries over real rows on both backends: groups, windows, days, and bad requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.report import parse_instant, summarize
from billing.usage import Segment, SegmentStatus, UsageSegment, new_usage_recorder
from foundation.errors import RequestError
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def llm(org: str, source: BillingSource, at: datetime, tokens: tuple[int, int], **kw: object) -> UsageSegment:
    return UsageSegment(
        org_id=org,
        segment=Segment.LLM,
        provider="openai",
        billing_source=source,
        model="gpt-4o-mini",
        tokens=Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
        at=at,
        **kw,  # type: ignore[arg-type]
    )


def voice(org: str, segment: Segment, at: datetime, *, seconds: float = 0.0, chars: int = 0) -> UsageSegment:
    return UsageSegment(
        org_id=org,
        segment=segment,
        provider="internal",
        billing_source=BillingSource.PLATFORM,
        audio_seconds=seconds,
        characters=chars,
        at=at,
    )


@pytest.fixture
async def org(db: Database, unique_prefix: str) -> str:
    org_id = f"org_{unique_prefix}"
    recorder = new_usage_recorder(db.sessions)
    for entry in (
        llm(org_id, BillingSource.BYOK, NOON, (100, 20)),
        llm(org_id, BillingSource.BYOK, NOON + timedelta(hours=1), (50, 5)),
        llm(org_id, BillingSource.PRIVATE, NOON + timedelta(hours=2), (10, 1), status=SegmentStatus.FAILED),
        voice(org_id, Segment.STT, NOON + timedelta(hours=13), seconds=2.25),
        voice(org_id, Segment.TTS, NOON + timedelta(hours=13), seconds=3.5, chars=42),
        llm(org_id, BillingSource.BYOK, NOON - timedelta(days=3), (999, 999)),  # outside the window
        llm(f"{org_id}_other", BillingSource.BYOK, NOON, (777, 777)),  # another org
    ):
        recorder.record(entry)
    await recorder.flush()
    return org_id


async def window(
    db: Database, org: str, *groups: str
) -> list[tuple[dict[str, str | None], dict[str, int | float]]]:
    async with db.session() as s:
        entries = await summarize(
            s, org, since=NOON - timedelta(hours=1), until=NOON + timedelta(days=1), group_by=groups
        )
    return [(e.group, e.totals) for e in entries]


async def test_by_billing_source_and_segment(db: Database, org: str) -> None:
    rows = await window(db, org, "billing_source", "segment")
    assert [(g["billing_source"], g["segment"], t["segments"]) for g, t in rows] == [
        ("byok", "llm", 2),
        ("platform", "stt", 1),
        ("platform", "tts", 1),
        ("private", "llm", 1),
    ]
    byok = rows[0][1]
    assert (byok["input_tokens"], byok["output_tokens"]) == (150, 25)
    tts = rows[2][1]
    assert (tts["audio_seconds"], tts["characters"], tts["input_tokens"]) == (3.5, 42, 0)


async def test_whole_window_days_and_status(db: Database, org: str) -> None:
    [(group, total)] = await window(db, org)
    assert group == {} and total["segments"] == 5 and total["input_tokens"] == 160
    assert total["audio_seconds"] == 5.75
    days = await window(db, org, "day")
    assert [(g["day"], t["segments"]) for g, t in days] == [("2026-11-24", 3), ("2026-11-25", 2)]
    statuses = await window(db, org, "status")
    assert {g["status"]: t["segments"] for g, t in statuses} == {"failed": 1, "ok": 4}


async def test_an_empty_window_and_bad_requests(db: Database, org: str) -> None:
    async with db.session() as s:
        empty = await summarize(s, org, since=NOON + timedelta(days=5), until=NOON + timedelta(days=6))
        assert empty == []
        with pytest.raises(RequestError) as unknown:
            await summarize(s, org, since=NOON, until=NOON + timedelta(days=1), group_by=("colour",))
        assert unknown.value.param == "group_by" and "billing_source" in str(unknown.value)
        with pytest.raises(RequestError):
            await summarize(s, org, since=NOON, until=NOON, group_by=())


def test_parse_instant() -> None:
    now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert parse_instant("24h", now=now, param="since") == now - timedelta(hours=24)
    assert parse_instant("7d", now=now, param="since") == now - timedelta(days=7)
    assert parse_instant("2026-11-20T00:00:00", now=now, param="since") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_instant("2026-11-20T00:00:00+01:00", now=now, param="since").utcoffset() == timedelta(
        hours=1
    )
    with pytest.raises(RequestError) as bad:
        parse_instant("yesterday", now=now, param="since")
    assert bad.value.param == "since"
