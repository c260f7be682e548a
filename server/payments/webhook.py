"""Applying Stripe events: each event id once, each effect once, in any order, on any replica.

Two layers make a delivery safe to repeat. The event id: an event already in `stripe_events`
is answered without acting. The effect: every ledger write is keyed by what it pays for (the
Checkout session, the refund's running total), so the same payment reaching us through two
different events, or two replicas racing on one event, still moves credits once. A tier is
set from the subscription as Stripe holds it now (re-read, not taken from the event), so
events applied out of order end in the same tier. A tier change bumps the org's config version
in the same transaction, so every replica reloads its routing within its poll interval; it
changes `orgs.tier` only: connections the new tier does not allow are skipped, never deleted.
A failed subscription invoice starts the tier's grace period and a paid one ends it
(`server.payments.grace`, whose sweeper falls an unpaid org back), and a paid one grants a
bundled tier's included credits, keyed by the invoice id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.credit_packs import CreditPack, default_packs
from billing.ledger import Ledger
from billing.ledger_types import IdempotencyConflictError
from billing.money import format_usd
from billing.preflight import InsufficientCreditsError
from foundation.audit import Acting, AuditEvent, acting
from foundation.orgs import Org
from foundation.tiers import Tier
from server.org_plan import set_plan
from server.payments import events as ev
from server.payments.client import StripePayments
from server.payments.grace import end_grace, start_grace
from server.payments.tables import StripeCustomer, StripeEvent

log = logging.getLogger("patchbay.payments")


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: str
    org_id: str | None = None
    duplicate: bool = False


class Webhook:
    """Applies verified events. `changed(org_id)` tells this process an org's tier moved."""

    def __init__(
        self,
        payments: StripePayments,
        sessions: async_sessionmaker[AsyncSession],
        ledger: Ledger,
        *,
        changed: Callable[[str], None],
        packs: Mapping[str, CreditPack] | None = None,
    ) -> None:
        self._payments = payments
        self._sessions = sessions
        self._ledger = ledger
        self._changed = changed
        self._packs = packs or default_packs()

    async def apply(self, event: Mapping[str, Any]) -> Applied:
        """Apply one event (a dict in Stripe's JSON shape) unless it was applied before."""
        event_id = str(event["id"])
        async with self._sessions() as session:
            if await session.get(StripeEvent, event_id) is not None:
                return Applied("already applied", duplicate=True)
        data = event["data"]
        action = ev.action_for(
            str(event["type"]),
            data["object"],
            data.get("previous_attributes") or {},
            self._packs,
            created=int(event["created"]),
        )
        result = await self._act(action)
        async with self._sessions() as session:
            session.add(
                StripeEvent(
                    id=event_id,
                    type=str(event["type"])[:100],
                    org_id=result.org_id,
                    outcome=result.outcome[:200],
                    created_at=datetime.fromtimestamp(int(event["created"]), UTC),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                # Another replica applied it at the same time; every effect above is keyed, so it counted once.
                return Applied(result.outcome, result.org_id, duplicate=True)
        log.info(
            "stripe event applied",
            extra={"fields": {"event": event_id, "type": event["type"], "outcome": result.outcome}},
        )
        return result

    async def reconcile(self, since: int) -> list[Applied]:
        """Apply every event Stripe recorded from `since` (Unix seconds) on, oldest first: the way
        back from missed deliveries (`billing reconcile`). Events applied before are skipped, so
        running it again, or while the webhook is receiving, changes nothing twice."""
        return [await self.apply(event.to_dict()) for event in await self._payments.events_since(since)]

    async def _act(self, action: ev.Action) -> Applied:
        match action:
            case ev.Ignore(reason):
                return Applied(f"ignored: {reason}")
            case ev.GrantCredits(org_id, amount, key, pack_id):
                if not await self._org_exists(org_id):
                    return Applied(f"ignored: no org {org_id}")
                entry = await self._ledger.purchase(
                    org_id, amount, key, f"Stripe checkout, pack {pack_id}", actor="stripe"
                )
                return Applied(
                    f"granted {format_usd(amount)} USD" + (" (already)" if entry.replayed else ""), org_id
                )
            case ev.SyncSubscription(subscription_id, org_id, customer_id):
                return await self._sync_tier(subscription_id, org_id or await self._org_of(customer_id))
            case ev.TakeBackCredits():
                return await self._take_back(action)
            case ev.RecordPaymentFailed():
                return await self._payment_failed(action)
            case ev.InvoicePaid():
                return await self._invoice_paid(action)
        raise AssertionError(action)

    async def _sync_tier(self, subscription_id: str, org_id: str | None) -> Applied:
        if org_id is None or not await self._org_exists(org_id):
            return Applied(f"ignored: subscription {subscription_id} belongs to no org here")
        subscription = await self._payments.subscription(subscription_id)
        tier = ev.tier_for(subscription, self._payments.tier_prices)
        status = str(subscription.get("status"))
        async with self._sessions() as session, session.begin():
            row = await session.get(StripeCustomer, org_id)
            if row is not None:
                row.subscription_id, row.subscription_status = subscription_id, status[:32]
                if status not in ev.KEEPS_TIER:
                    row.grace_until, row.grace_invoice_id = (
                        None,
                        None,
                    )  # Stripe ended it: nothing left to wait for
        if tier is None:
            return Applied(
                f"ignored: no price of {subscription_id} is in PATCHBAY_STRIPE_TIER_PRICES", org_id
            )
        moved = await self.set_tier(
            org_id, tier, reason=f"subscription {subscription_id} {subscription.get('status')}"
        )
        return Applied(f"tier {tier.value}" + ("" if moved else " (unchanged)"), org_id)

    async def set_tier(self, org_id: str, tier: Tier, *, reason: str) -> bool:
        """Set the org's tier through the one plan writer (`server.org_plan`), which audits it and
        bumps its config version in the same transaction; False if it was already so."""
        with acting(Acting("stripe", credential="stripe")):
            async with self._sessions() as session, session.begin():
                plan = await set_plan(session, org_id, tier=tier, actor="stripe", reason=reason)
        if not plan.changed:
            return False
        self._changed(org_id)
        return True

    async def _take_back(self, action: ev.TakeBackCredits) -> Applied:
        org_id = action.org_id or (await self._org_of(action.customer_id) if action.customer_id else None)
        if org_id is None or not await self._org_exists(org_id):
            return Applied(f"ignored: charge {action.charge_id} belongs to no org here")
        reason = f"Stripe refund of {action.charge_id}"
        try:
            await self._ledger.adjustment(org_id, -action.amount, action.key, reason, actor="stripe")
            return Applied(f"took back {format_usd(action.amount)} USD", org_id)
        except IdempotencyConflictError:
            return Applied("took back (already)", org_id)
        except InsufficientCreditsError as exc:
            # Part of the credits were spent already: take what is left, record the rest.
            left = exc.available or 0
            if left <= 0:
                return Applied(f"took back nothing: {format_usd(action.amount)} USD already spent", org_id)
            short = action.amount - left
            await self._ledger.adjustment(
                org_id, -left, action.key, f"{reason}; {format_usd(short)} USD already spent", actor="stripe"
            )
            return Applied(f"took back {format_usd(left)} USD of {format_usd(action.amount)}", org_id)

    async def _payment_failed(self, action: ev.RecordPaymentFailed) -> Applied:
        org_id = await self._org_of(action.customer_id)
        if org_id is None:
            return Applied(f"ignored: customer {action.customer_id} belongs to no org here")
        outcome = "payment failure recorded; no subscription, so no grace period"
        async with self._sessions() as session, session.begin():
            if action.subscription_id is not None:
                row, org = await session.get(StripeCustomer, org_id), await session.get(Org, org_id)
                if row is not None and org is not None:
                    failed_at = datetime.fromtimestamp(action.created, UTC)
                    grace = start_grace(row, org.tier, self._payments.tiers, action.invoice_id, failed_at)
                    outcome = f"payment failure recorded; {grace}"
            session.add(
                AuditEvent(
                    org_id=org_id,
                    actor="stripe",
                    credential="stripe",
                    action="billing.payment_failed",
                    target_type="invoice",
                    target_id=action.invoice_id[:64],
                    details={
                        "attempt_count": action.attempt_count,
                        "next_payment_attempt": action.next_payment_attempt,
                        "outcome": outcome,
                    },
                )
            )
        return Applied(outcome, org_id)

    async def _invoice_paid(self, action: ev.InvoicePaid) -> Applied:
        """End any grace period, restore the subscribed tier if a grace period ended it, and grant
        the tier's included credits once per invoice."""
        org_id = await self._org_of(action.customer_id)
        if org_id is None:
            return Applied(f"ignored: customer {action.customer_id} belongs to no org here")
        async with self._sessions() as session, session.begin():
            row = await session.get(StripeCustomer, org_id)
            ended = row is not None and end_grace(row, datetime.fromtimestamp(action.created, UTC))
        outcome = ["invoice paid"] + (["grace period ended"] if ended else [])
        subscription = await self._payments.subscription(action.subscription_id)
        tier = ev.tier_for(subscription, self._payments.tier_prices)
        # Paid after the grace period moved the org down: the tier it pays for comes back.
        paying = tier is not None and subscription.get("status") in ev.KEEPS_TIER
        if (
            paying
            and tier is not None
            and await self.set_tier(org_id, tier, reason=f"invoice {action.invoice_id} paid")
        ):
            outcome.append(f"tier {tier.value}")
        included = self._payments.tiers[tier].included_credits if tier is not None else 0
        if tier is not None and included > 0:
            entry = await self._ledger.grant(
                org_id,
                included,
                f"stripe:invoice:{action.invoice_id}",
                f"credits included with tier {tier.value}, Stripe invoice {action.invoice_id}",
                actor="stripe",
            )
            outcome.append(
                f"granted {format_usd(included)} USD included with {tier.value}"
                + (" (already)" if entry.replayed else "")
            )
        return Applied("; ".join(outcome), org_id)

    async def _org_of(self, customer_id: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(StripeCustomer.org_id).where(StripeCustomer.customer_id == customer_id)
            )

    async def _org_exists(self, org_id: str) -> bool:
        async with self._sessions() as session:
            return await session.get(Org, org_id) is not None
