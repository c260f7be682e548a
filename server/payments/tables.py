"""Tables of the Stripe integration: events already applied, and each org's Stripe customer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
