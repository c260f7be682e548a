"""The credits ledger's tables: append-only entries, and two small tables derived from them.

`ledger_entries` is the record: every grant, purchase, hold, settle, release, refund and
adjustment, never updated or deleted (triggers refuse both on SQLite and PostgreSQL, as for the
audit log). Amounts are integers of micro-USD (`billing.money`).

`ledger_accounts` (one row per org: balance and held) and `ledger_holds` (the holds not yet
settled or released) are what the entries add up to, kept in the same transaction as each entry
so that a reservation needs no scan. The account row is also the lock every ledger write takes
first (`billing.ledger_store`). Both can be recomputed from the entries at any time
(`billing.ledger_query.derive`), and a test does.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    String,
    Table,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow


class EntryKind(StrEnum):
    GRANT = "grant"
    """Credits given by the operator (`patchbay credits grant`)."""
    PURCHASE = "purchase"
    """Credits paid for (a payment provider's webhook)."""
    HOLD = "hold"
    """A reservation for a segment about to run; changes `held`, not the balance."""
    SETTLE = "settle"
    """The actual cost of a held segment (or a charge without a hold); closes its hold."""
    RELEASE = "release"
    """Gives a hold back unused (nothing served, or expired after a crash); closes its hold."""
    REFUND = "refund"
    """Credits returned for a charge (optionally naming the hold whose charge it refunds)."""
    ADJUSTMENT = "adjustment"
    """An operator's correction, the only signed amount."""


CREDITS = (EntryKind.GRANT, EntryKind.PURCHASE, EntryKind.REFUND)
CLOSING = (EntryKind.SETTLE, EntryKind.RELEASE)
_KINDS = ", ".join(f"'{k.value}'" for k in EntryKind)
_CLOSING = "kind IN ('settle', 'release')"


class LedgerEntry(Base):
    """One movement of credits. Never updated, never deleted; holds no secret."""

    __tablename__ = "ledger_entries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("led"))
    """Hold entries' ids start `hld_` and are the hold ids; other entries' start `led_`."""
    org_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    """micro-USD, never negative except for adjustments. Effect on the balance: + for grant,
    purchase, refund and adjustment; - for settle; none for hold (the amount reserved) and
    release (the reservation given back)."""
    idempotency_key: Mapped[str] = mapped_column(String(128))
    """Unique per org: a replay with the same key returns the first result and writes nothing."""
    hold_id: Mapped[str | None] = mapped_column(String(32))
    """settle/release: the hold they close (at most one closing entry per hold); refund: the
    settled hold whose charge it returns, when given."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Reason, requested amounts, shortfall. Never a secret, a prompt or a transcript."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Holds: when the sweeper may release it (a crash left it open)."""

    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key", name="uq_ledger_entries_org_key"),
        Index("ix_ledger_entries_org_created", "org_id", "created_at"),
        Index(
            "uq_ledger_entries_closing_hold",
            "hold_id",
            unique=True,
            sqlite_where=text(_CLOSING),
            postgresql_where=text(_CLOSING),
        ),
        Index("ix_ledger_entries_hold", "hold_id"),
        CheckConstraint(f"kind IN ({_KINDS})", name="kind"),
        CheckConstraint("amount >= 0 OR kind = 'adjustment'", name="amount"),
    )


class LedgerAccount(Base):
    """An org's balance and the sum of its open holds: derived from the entries, and the lock."""

    __tablename__ = "ledger_accounts"

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("held >= 0 AND balance >= held", name="covered"),)


class LedgerHold(Base):
    """A hold not yet settled or released: the row goes when its closing entry is written."""

    __tablename__ = "ledger_holds"

    hold_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


ENTRIES: Table = LedgerEntry.__table__  # type: ignore[assignment]
ACCOUNTS: Table = LedgerAccount.__table__  # type: ignore[assignment]
HOLDS: Table = LedgerHold.__table__  # type: ignore[assignment]

APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
        "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
        "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'ledger_entries is append-only'; END $$",
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()",
    ),
}
"""Statements that make `ledger_entries` append-only, per dialect (run by the migration and by
`create_all`)."""

DROP_APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS ledger_entries_no_update",
        "DROP TRIGGER IF EXISTS ledger_entries_no_delete",
    ),
    "postgresql": (
        "DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries",
        "DROP FUNCTION IF EXISTS ledger_entries_append_only()",
    ),
}

for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(ENTRIES, "after_create", DDL(_statement).execute_if(dialect=_dialect))  # type: ignore[no-untyped-call]
