"""The grace period after a failed subscription payment, and the sweeper that ends it.

`invoice.payment_failed` of an org's subscription starts a grace period of its tier's
`grace_period_days` (billing/data/tiers.json), counted from the failure's time at Stripe; the
tier stays meanwhile. `invoice.paid` ends it. A later failure while one runs does not extend
it, and a failure older than the last paid invoice (deliveries out of order) starts none.

When the period passes unpaid, `GraceSweeper` moves the org to its tier's `fallback_tier`
through `server.org_plan.set_plan` (audit event `org.tier` with the reason, config version
bump), without any request arriving: every server process with Stripe configured runs one
(`Services.start`), they may overlap (each re-reads the row in its own transaction and the
second finds nothing to do), and the time comes from an injected clock, so tests move it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.tiers import TierTable, policy_for
from foundation.audit import Acting, acting
from foundation.background import PeriodicTask
from foundation.db import utcnow
from foundation.orgs import Org
from server.org_plan import set_plan
from server.payments.tables import StripeCustomer

log = logging.getLogger("patchbay.payments")
DEFAULT_INTERVAL = 60.0


def start_grace(
    row: StripeCustomer, tier: str, tiers: TierTable, invoice_id: str, failed_at: datetime
) -> str:
    """Start the grace period on `row` unless one runs or the failure predates the last payment;
    returns what it did, in a few words."""
    if row.last_paid_at is not None and failed_at <= row.last_paid_at:
        return "an invoice was paid since; no grace period"
    if row.grace_until is not None:
        return f"grace period already running until {row.grace_until.isoformat()}"
    policy = policy_for(tier, tiers)
    if policy.fallback_tier.value == tier:
        return f"tier {tier} has nothing to fall back from"
    row.grace_until = failed_at + timedelta(days=policy.grace_period_days)
    row.grace_invoice_id = invoice_id[:255]
    return f"grace period until {row.grace_until.isoformat()}, then tier {policy.fallback_tier.value}"


def end_grace(row: StripeCustomer, paid_at: datetime) -> bool:
    """An invoice was paid: the grace period (if any) is over; True if one was running."""
    running = row.grace_until is not None
    row.grace_until, row.grace_invoice_id = None, None
    if row.last_paid_at is None or paid_at > row.last_paid_at:
        row.last_paid_at = paid_at
    return running


class GraceSweeper:
    """Moves orgs whose grace period has passed to their fallback tier; `changed(org_id)` tells
    this process the org's routing changed (other replicas see the version bump)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tiers: TierTable,
        *,
        changed: Callable[[str], None],
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._tiers = tiers
        self._changed = changed
        self._clock = clock
        self._background = PeriodicTask(
            "patchbay-grace-sweeper", lambda: self.sweep(), interval, log=log, what="grace sweep"
        )

    async def sweep(self) -> list[str]:
        """Fall back every org whose grace period ended by now; returns their ids."""
        now = self._clock()
        async with self._sessions() as session:
            due = (
                await session.scalars(select(StripeCustomer.org_id).where(StripeCustomer.grace_until <= now))
            ).all()
        moved = [org_id for org_id in due if await self._fall_back(org_id, now)]
        if moved:
            log.info("grace periods ended", extra={"fields": {"orgs": len(moved)}})
        return moved

    async def _fall_back(self, org_id: str, now: datetime) -> bool:
        with acting(Acting("stripe", credential="stripe")):
            async with self._sessions() as session, session.begin():
                row = await session.scalar(
                    select(StripeCustomer).where(StripeCustomer.org_id == org_id).with_for_update()
                )
                if row is None or row.grace_until is None or row.grace_until > now:
                    return False  # paid meanwhile, or another replica got there first
                org = await session.get(Org, org_id)
                invoice, until = row.grace_invoice_id, row.grace_until
                row.grace_until, row.grace_invoice_id = None, None
                if org is None:
                    return False
                policy = policy_for(org.tier, self._tiers)
                reason = (
                    f"grace period of {policy.grace_period_days} days ended {until.isoformat()} "
                    f"with invoice {invoice} unpaid"
                )
                plan = await set_plan(
                    session, org_id, tier=policy.fallback_tier, actor="stripe", reason=reason
                )
        if plan.changed:
            self._changed(org_id)
        return bool(plan.changed)

    @property
    def running(self) -> bool:
        return self._background.running

    def start(self) -> None:
        self._background.start()

    async def aclose(self) -> None:
        await self._background.stop()
