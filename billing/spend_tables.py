"""Spend caps and what has been spent against them, per calendar month (UTC).

`spend_caps` holds the limits: an org's monthly budget (`api_key_id` empty) and each API key's
monthly spend limit, integers of micro-USD. `spend_totals` holds what was charged per org and
per key in a month (`YYYY-MM`, UTC): the sum of the settled charges of the ledger's `settle`
entries written that month, kept by the ledger in the same transaction as each settle
(`billing.ledger_rules.charge`), so it is exact and durable with the charges themselves and
can be read without summing the month's entries. See docs/billing.md#budgets-and-spend-limits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, utcnow

ORG_SCOPE = ""
"""The `api_key_id` of an org-wide row (the monthly budget, the org's total)."""


class SpendCap(Base):
    """A monthly cap: the org's budget (`api_key_id` = "") or one API key's spend limit."""

    __tablename__ = "spend_caps"

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True, default=ORG_SCOPE)
    limit_micro_usd: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("limit_micro_usd >= 0", name="limit"),)


class SpendTotal(Base):
    """micro-USD charged in one month (UTC) to the org (`api_key_id` = "") or through one key."""

    __tablename__ = "spend_totals"

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True, default=ORG_SCOPE)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    """`YYYY-MM`, UTC: the month of the settle entries it sums."""
    spent: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("spent >= 0", name="spent"),)


CAPS: Table = SpendCap.__table__  # type: ignore[assignment]
TOTALS: Table = SpendTotal.__table__  # type: ignore[assignment]
