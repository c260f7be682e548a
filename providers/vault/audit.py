"""Decrypt audits without a database round-trip on the request path.

`VaultCredential.reveal` runs while an adapter builds a request; it must not wait on a write.
It hands an `AuditEntry` to an `AuditSink`, whose `record` is synchronous and O(1).
`BufferedAuditWriter` keeps entries in memory and one background task writes them in batches:
every `flush_interval` seconds, sooner when `batch_size` entries are waiting, and on close.

Trade-off (documented in docs/security.md): entries recorded in the last flush interval
before a hard crash are lost, and while the database is unreachable at most `max_pending`
entries are kept (the rest are counted as dropped and logged by count). Entries never hold a
secret: only org, actor, action, target and a purpose string.

Successful decrypts are coalesced per batch: every `secret.decrypt` entry with the same org,
actor, target and details (purpose, secret id, field, key version) becomes one row whose
`details` add `count` (how many reveals), and `last_at` (the last one's time) when more than
one; the row's `created_at` is the first reveal's. A busy connection therefore writes about
one decrypt row per purpose per second instead of one per request. Every other action,
`secret.decrypt_failed` included, is written one row per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from providers.buffered import BufferedRowWriter, RowValues
from providers.db import new_id, utcnow
from providers.tables import AuditEvent


@dataclass(frozen=True, slots=True)
class AuditEntry:
    org_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: Mapping[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_row(self) -> AuditEvent:
        return AuditEvent(
            org_id=self.org_id,
            actor=self.actor,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            details=dict(self.details),
            created_at=self.at,
        )

    def row_values(self, extra: Mapping[str, Any] | None = None) -> RowValues:
        """The `audit_events` values without building an ORM object (see `providers.buffered`)."""
        details: dict[str, Any] = dict(self.details)
        if extra:
            details.update(extra)
        return _TABLE, {
            "id": new_id("aud"),
            "org_id": self.org_id,
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": details,
            "created_at": self.at,
        }


_TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]
COALESCED_ACTION = "secret.decrypt"


def coalesce(batch: list[AuditEntry]) -> list[RowValues]:
    """One row per distinct `secret.decrypt` (org, actor, target, details) with a count; others as they are."""
    rows: list[RowValues] = []
    groups: dict[tuple[Any, ...], list[AuditEntry]] = {}
    for entry in batch:
        if entry.action != COALESCED_ACTION:
            rows.append(entry.row_values())
            continue
        key = (
            entry.org_id,
            entry.actor,
            entry.target_type,
            entry.target_id,
            tuple(sorted(entry.details.items())),
        )
        groups.setdefault(key, []).append(entry)
    for entries in groups.values():
        extra: dict[str, Any] = {"count": len(entries)}
        if len(entries) > 1:
            extra["last_at"] = max(e.at for e in entries).isoformat()
        first = min(entries, key=lambda e: e.at)
        rows.append(first.row_values(extra))
    return rows


class AuditSink(Protocol):
    def record(self, entry: AuditEntry) -> None:
        """Accept an entry without blocking; persistence may happen later."""
        ...


class MemoryAudit:
    """Keeps entries in a list: for tests and for CLI commands that decrypt nothing."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BufferedAuditWriter(BufferedRowWriter[AuditEntry]):
    """Buffers decrypt audits in memory; one background task writes them to `audit_events`,
    coalescing successful decrypts (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            sessions,
            name="vault-audit",
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_pending=max_pending,
            on_flush=on_flush,
        )

    def _rows(self, batch: list[AuditEntry]) -> list[RowValues]:
        return coalesce(batch)
