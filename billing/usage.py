"""Per-segment usage: the record every surface writes, off the request path.

A chat request writes one `llm` segment; a voice turn writes `stt`, `llm` and `tts` segments
that share a `turn_id`. Each segment carries the billing source of the connection that
actually served it (after fallback), per `providers.contract.billing_source_for`, and its row
id from the moment it is made. While serving, the recorder journals each segment before
`record` returns (`billing.usage_journal`), so a usage row outlives a `kill -9` like a settle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import usage_journal
from billing.tables import UsageRecord
from billing.usage_journal import UsageJournal
from foundation import metrics
from foundation.buffered import BufferedRowWriter, RowValues
from foundation.db import new_id, utcnow
from providers.contract import BillingSource
from providers.types import Usage

log = logging.getLogger("patchbay.billing")


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
    id: str = field(default_factory=lambda: new_id("use"), compare=False)
    """The row's id: a journaled segment written twice (a replay) is one row."""

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> UsageSegment:
        """A journal line (the segment as orjson wrote it) back into the segment; fields this
        version does not know are ignored."""
        known: dict[str, Any] = {k: v for k, v in line.items() if k in _FIELDS}
        known |= {
            "segment": Segment(line["segment"]),
            "billing_source": BillingSource(line["billing_source"]),
            "status": SegmentStatus(line.get("status", SegmentStatus.OK)),
            "tokens": Usage(**(line.get("tokens") or {})),
            "at": datetime.fromisoformat(line["at"]),
        }
        return cls(**known)

    def row_values(self) -> RowValues:
        """The `usage_records` values without building an ORM object (see `foundation.buffered`)."""
        tokens = self.tokens
        return _TABLE, {
            "id": self.id,
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
_FIELDS = frozenset(f.name for f in fields(UsageSegment))


def _row_of_line(line: Mapping[str, Any]) -> RowValues:
    return UsageSegment.from_line(line).row_values()


class UsageRecorder(BufferedRowWriter[UsageSegment]):
    """`record(segment)` is O(1) and never waits on the database; it also counts the segment's
    tokens and cost into the metrics (by billing source and segment). After `open_journal`
    (serving), it first appends the segment to this process's journal: with the memory buffer
    full (the database away), the segment stays in the journal only, written by a replay."""

    _journal: UsageJournal | None = None
    _directory: Path | None = None
    _rounds = 0
    journal_errors = 0

    def record(self, entry: UsageSegment) -> None:
        tokens = entry.tokens
        metrics.observe_usage(
            entry.billing_source.value,
            entry.segment.value,
            tokens.input_tokens,
            tokens.output_tokens,
            entry.cost_micro_usd,
        )
        journal = self._journal
        if journal is not None:
            spill = self.pending >= self._max_pending
            try:
                journal.append(entry, spill=spill)
            except OSError as exc:  # disk full: the row waits in memory, as without a journal
                self.journal_errors += 1
                if self.journal_errors == 1 or self.journal_errors % 1000 == 0:
                    log.error(
                        "usage journal write failed",
                        extra={"fields": {"error": type(exc).__name__, "count": self.journal_errors}},
                    )
            else:
                if spill:
                    return
        super().record(entry)

    async def open_journal(self, directory: Path) -> None:
        """Journal every segment from now on; first write the journals dead processes left."""
        await self.replay_orphans(directory)
        self._directory = directory
        self._journal = UsageJournal(directory)

    async def replay_orphans(self, directory: Path) -> int:
        """Write the usage journals of dead processes (idempotently) and remove them; returns how many."""
        return await usage_journal.replay_orphans(self._sessions, directory, _row_of_line)

    async def flush(self) -> int:
        journal = self._journal
        if journal is None:
            return await super().flush()
        async with self._flush_lock:
            file, spilled = journal.before_write()
            written = False
            try:
                if self._pending:
                    await journal.sync(file)
                count = await self._write_pending()
                written = True
            finally:
                kept = journal.after_write(file, spilled, written=written, idle=not self._pending)
        self._rounds += 1
        if kept or self._rounds % usage_journal.ORPHAN_EVERY == 0:
            await self._replay_quietly()
        return count

    async def _replay_quietly(self) -> None:
        if self._directory is None:
            return
        try:
            await self.replay_orphans(self._directory)
        except Exception as exc:
            log.warning("usage journal replay failed", extra={"fields": {"error": type(exc).__name__}})

    async def aclose(self) -> None:
        """Stop, write what is left, and close the journal (kept for the next start if not all written)."""
        try:
            await super().aclose()
        finally:
            journal, self._journal = self._journal, None
            if journal is not None:
                journal.close(idle=not self.pending)


def new_usage_recorder(
    sessions: async_sessionmaker[AsyncSession], *, flush_interval: float = 1.0
) -> UsageRecorder:
    return UsageRecorder(sessions, name="usage", flush_interval=flush_interval, keyed=True)
