"""Usage segments as rows: every column is written, and what is written reads back."""

from __future__ import annotations

from sqlalchemy import select

from billing.tables import UsageRecord
from billing.usage import Segment, SegmentStatus, UsageSegment, new_usage_recorder
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database


def segment(org_id: str) -> UsageSegment:
    return UsageSegment(
        org_id=org_id,
        segment=Segment.LLM,
        provider="openai",
        billing_source=BillingSource.BYOK,
        model="gpt-4o-mini",
        profile_id="openai:default",
        connection_id="con_1",
        agent_id="agt_1",
        api_key_id="key_1",
        request_id="req_1",
        turn_id="turn_1",
        intent="voice_turn",
        status=SegmentStatus.CANCELLED,
        tokens=Usage(
            input_tokens=12, output_tokens=7, cached_input_tokens=3, cache_write_tokens=2, reasoning_tokens=5
        ),
        audio_seconds=1.5,
        characters=42,
        latency_ms=12.5,
    )


def test_row_values_set_every_column() -> None:
    table, values = segment("org_1").row_values()
    assert table is UsageRecord.__table__
    assert set(values) == {c.key for c in UsageRecord.__table__.columns}


async def test_a_recorded_segment_reads_back_whole(db: Database, unique_prefix: str) -> None:
    org_id = f"org_{unique_prefix}"
    recorder = new_usage_recorder(db.sessions)
    recorder.record(segment(org_id))
    assert await recorder.flush() == 1
    async with db.session() as s:
        row = (await s.scalars(select(UsageRecord).where(UsageRecord.org_id == org_id))).one()
    expected = segment(org_id).to_row()
    for column in UsageRecord.__table__.columns:
        if column.key not in ("id", "created_at"):
            assert getattr(row, column.key) == getattr(expected, column.key), column.key
    assert row.id.startswith("use_")
