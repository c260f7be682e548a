"""The conformance results table: the latest score per (connection, model, suite, suite version,
capability), with the latency and cost the run measured. A run replaces the rows of its key;
rows of an older suite version stay and read as stale (docs/conformance.md#suite-versions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow


class ConformanceResult(Base):
    __tablename__ = "conformance_results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("conf"))
    connection_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[str] = mapped_column(String(255))
    suite: Mapped[str] = mapped_column(String(64))
    suite_version: Mapped[int] = mapped_column(Integer)
    capability: Mapped[str] = mapped_column(String(32))
    cases: Mapped[int] = mapped_column(Integer)
    passed: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    """Median time to the first output event of the streamed cases."""
    total_ms: Mapped[float | None] = mapped_column(Float)
    """Median total time of a case."""
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    cost_micro_usd: Mapped[int] = mapped_column(Integer, default=0)
    """What the capability's cases cost at list price, all runs together (0 when unpriced)."""
    failures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Failure reason -> count (reasons of routing.conformance.checks; never model output)."""
    run_id: Mapped[str] = mapped_column(String(32))
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "connection_id",
            "model",
            "suite",
            "suite_version",
            "capability",
            name="uq_conformance_results_key",
        ),
    )
