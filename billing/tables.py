"""Tables owned by billing: one usage record per segment of work (LLM, STT, TTS)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow

UNREPORTED = "report_id IS NULL AND billing_source != 'platform' AND cost_micro_usd > 0"
"""A BYOK or private segment that was charged (a surcharge) and no usage report has looked at."""


class UsageRecord(Base):
    """What one segment consumed and where its cost lands. No prompt, no transcript, no key."""

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("use"))
    org_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    """The HTTP request id, or the voice session id for voice segments."""
    turn_id: Mapped[str | None] = mapped_column(String(64))
    """Voice: the turn (response) the segment belongs to; all segments of a turn share it."""
    segment: Mapped[str] = mapped_column(String(8))
    """llm | stt | tts"""
    intent: Mapped[str | None] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    profile_id: Mapped[str | None] = mapped_column(String(100))
    connection_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255))
    billing_source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    """ok | failed | cancelled"""
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    characters: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """What the org was charged for the segment (billing.credits_preflight), in micro-USD."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    report_id: Mapped[str | None] = mapped_column(String(32))
    """For a BYOK or private segment with a surcharge: the usage report it was sent to the
    payment provider in (server/payments/usage_reports.py), or `credits` when it stays charged
    to credits; null: not looked at yet."""

    __table_args__ = (
        Index("ix_usage_records_org_created", "org_id", "created_at"),
        Index("ix_usage_records_turn", "turn_id"),
        Index(
            "ix_usage_records_unreported",
            "org_id",
            sqlite_where=text(UNREPORTED),
            postgresql_where=text(UNREPORTED),
        ),
    )
