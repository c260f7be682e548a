"""Per-segment usage: the record every surface writes, off the request path.

A chat request writes one `llm` segment; a voice turn writes `stt`, `llm` and `tts` segments
that share a `turn_id`. Each segment carries the billing source of the connection that
actually served it (after fallback), per `providers.contract.billing_source_for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.tables import UsageRecord
from foundation import metrics
from foundation.buffered import BufferedRowWriter, RowValues
from foundation.db import new_id, utcnow
from providers.contract import BillingSource
from providers.types import Usage


class Segment(StrEnum):
    LLM = "llm"
    STT = "stt"
    TTS = "tts"


class SegmentStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class UsageSegment:
    org_id: str
    segment: Segment
    provider: str
    billing_source: BillingSource
    model: str | None = None
    profile_id: str | None = None
    connection_id: str | None = None
    agent_id: str | None = None
    api_key_id: str | None = None
    request_id: str | None = None
    turn_id: str | None = None
    intent: str | None = None
    status: SegmentStatus = SegmentStatus.OK
    tokens: Usage = field(default_factory=Usage)
    audio_seconds: float = 0.0
    characters: int = 0
    latency_ms: float | None = None
    cost_micro_usd: int = 0
    """What the org was charged for it (micro-USD), as settled before the record is written."""
    at: datetime = field(default_factory=utcnow)

    def row_values(self) -> RowValues:
        """The `usage_records` values without building an ORM object (see `foundation.buffered`)."""
        tokens = self.tokens
        return _TABLE, {
            "id": new_id("use"),
            "org_id": self.org_id,
            "agent_id": self.agent_id,
            "api_key_id": self.api_key_id,
            "request_id": self.request_id,
            "turn_id": self.turn_id,
            "segment": self.segment.value,
            "intent": self.intent,
            "provider": self.provider,
            "profile_id": self.profile_id,
            "connection_id": self.connection_id,
            "model": self.model,
            "billing_source": self.billing_source.value,
            "status": self.status.value,
            "input_tokens": tokens.input_tokens,
            "output_tokens": tokens.output_tokens,
            "cached_input_tokens": tokens.cached_input_tokens,
            "cache_write_tokens": tokens.cache_write_tokens,
            "reasoning_tokens": tokens.reasoning_tokens,
            "audio_seconds": self.audio_seconds,
            "characters": self.characters,
            "latency_ms": self.latency_ms,
            "cost_micro_usd": self.cost_micro_usd,
            "created_at": self.at,
            "report_id": None,
        }

    def to_row(self) -> UsageRecord:
        return UsageRecord(**self.row_values()[1])


_TABLE: Table = UsageRecord.__table__  # type: ignore[assignment]


class UsageRecorder(BufferedRowWriter[UsageSegment]):
    """`record(segment)` is O(1) and never waits on the database; it also counts the segment's
    tokens and cost into the metrics (by billing source and segment)."""

    def record(self, entry: UsageSegment) -> None:
        tokens = entry.tokens
        metrics.observe_usage(
            entry.billing_source.value,
            entry.segment.value,
            tokens.input_tokens,
            tokens.output_tokens,
            entry.cost_micro_usd,
        )
        super().record(entry)


def new_usage_recorder(
    sessions: async_sessionmaker[AsyncSession], *, flush_interval: float = 1.0
) -> UsageRecorder:
    return UsageRecorder(sessions, name="usage", flush_interval=flush_interval)
