"""Tables of the Stripe integration: events already applied, each org's Stripe customer with its
subscription and grace period, and the BYOK surcharge batches reported as meter events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, utcnow


class StripeEvent(Base):
    """One row per Stripe event id the webhook (or `billing reconcile`) has applied: the primary key
    makes a second delivery of the same event a no-op, whichever replica receives it."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(200))
    """What applying it did, in a few words (`granted 10.00 USD`, `tier pro`, `ignored`)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The event's own time (Stripe's `created`)."""
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StripeCustomer(Base):
    """The Stripe customer that pays for an org: made at its first checkout, reused after."""

    __tablename__ = "stripe_customers"

    org_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    """The subscription the org's tier last came from (the webhook)."""
    subscription_status: Mapped[str | None] = mapped_column(String(32))
    """Its status then (`active`, `past_due`, `canceled`, ...)."""
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A subscription payment failed: the tier falls back when this passes unpaid (the grace sweeper)."""
    grace_invoice_id: Mapped[str | None] = mapped_column(String(255))
    """The invoice whose failed payment started the grace period."""
    last_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The time (Stripe's) of the last `invoice.paid`: an older failure does not start a grace period."""


class UsageReport(Base):
    """One batch of an org's BYOK surcharge sent to Stripe as one meter event. Its id is the
    event's `identifier`, so a resend after a lost answer is dropped by Stripe."""

    __tablename__ = "usage_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(255))
    value: Mapped[int] = mapped_column(BigInteger)
    """micro-USD: the sum of its usage records' `cost_micro_usd`."""
    records: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When Stripe accepted it; null: still to send (retried every interval)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_usage_reports_sent", "sent_at"),)
