"""The audit trail: who did what to which record, and the sinks that record it.

Service layers that already hold a session (the admin API, the CLI) add an `AuditEvent` row in
the same transaction as the change it describes. Code on a request path that must not wait on
a write (the vault revealing a key while an adapter builds a request) hands an `AuditEntry` to
an `AuditSink` instead: `record` is synchronous and O(1), and `BufferedAuditWriter` writes the
entries behind the request (see `foundation.buffered` for when, and what a crash loses).

Neither ever holds a secret, a prompt or a transcript: only org, actor, action, target and
short details such as a purpose string.

Who acted is set once per request by the surface that authenticated the caller (`acting`):
every audit row written inside it, through a session or through a sink, carries that actor,
the credential it used and the address it came from. The table is append-only: triggers refuse
UPDATE and DELETE on both databases (`APPEND_ONLY_DDL`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import DDL, JSON, Index, String, Table, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from foundation.buffered import BufferedRowWriter, RowValues
from foundation.db import Base, UTCDateTime, new_id, utcnow


class AuditEvent(Base):
    """Who did what to which record. Never holds a secret, a prompt or a transcript."""

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("aud"))
    org_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    credential: Mapped[str | None] = mapped_column(String(64))
    """Which credential acted: `operator`, an admin token's id, a user session's user id, `cli`."""
    address: Mapped[str | None] = mapped_column(String(64))
    """The client address the request came from (None for the CLI and background work)."""
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)


_TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Acting:
    """Who is acting in the current request: stamped on every audit row written inside it."""

    actor: str
    credential: str | None = None
    address: str | None = None


_ACTING: ContextVar[Acting | None] = ContextVar("patchbay_acting", default=None)


@contextmanager
def acting(who: Acting) -> Iterator[None]:
    token = _ACTING.set(who)
    try:
        yield
    finally:
        _ACTING.reset(token)


def current_acting() -> Acting | None:
    return _ACTING.get()


@event.listens_for(Session, "before_flush")
def _stamp_actor(session: Session, _context: object, _instances: object) -> None:
    who = _ACTING.get()
    if who is None:
        return
    for obj in session.new:
        if isinstance(obj, AuditEvent):
            obj.actor = who.actor
            obj.credential = who.credential
            obj.address = who.address


APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    ),
}
"""Statements that make `audit_events` append-only, per dialect (run by the migration and by
`create_all`)."""

for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(_TABLE, "after_create", DDL(_statement).execute_if(dialect=_dialect))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    org_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: Mapping[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)
    acting: Acting | None = field(default_factory=current_acting)
    """Who was acting when the entry was made (the request's caller), if anyone."""

    def to_row(self) -> AuditEvent:
        return AuditEvent(
            org_id=self.org_id,
            actor=self.actor,
            credential=self.acting.credential if self.acting else None,
            address=self.acting.address if self.acting else None,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            details=dict(self.details),
            created_at=self.at,
        )

    def row_values(self, extra: Mapping[str, Any] | None = None) -> RowValues:
        """The `audit_events` values without building an ORM object (see `foundation.buffered`).

        `extra` adds to the details (a writer that merges entries records how many it merged).
        """
        details: dict[str, Any] = dict(self.details)
        if extra:
            details.update(extra)
        return _TABLE, {
            "id": new_id("aud"),
            "org_id": self.org_id,
            "actor": self.actor,
            "credential": self.acting.credential if self.acting else None,
            "address": self.acting.address if self.acting else None,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": details,
            "created_at": self.at,
        }


class AuditSink(Protocol):
    def record(self, entry: AuditEntry) -> None:
        """Accept an entry without blocking; persistence may happen later."""
        ...


class MemoryAudit:
    """Keeps entries in a list: for tests and for CLI commands that write no audit rows."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BufferedAuditWriter(BufferedRowWriter[AuditEntry]):
    """Buffers audit entries in memory; one background task writes them to `audit_events`,
    one row per entry. A subclass may merge entries by overriding `_rows`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str = "audit",
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            sessions,
            name=name,
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_pending=max_pending,
            on_flush=on_flush,
        )


async def recent_events(
    session: AsyncSession, org_id: str, *, since: datetime, limit: int = 200, action: str | None = None
) -> list[AuditEvent]:
    """The org's audit events since a time, newest first."""
    query = select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.created_at >= since)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    rows = await session.scalars(
        query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    )
    return list(rows)
