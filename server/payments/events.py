"""What a Stripe event means for Patchbay: pure functions from an event's object to an action.

No I/O here: `server.payments.webhook` finds the org, applies the action and records the event.
The events acted on (docs/billing.md, "Stripe"):

- `checkout.session.completed` / `checkout.session.async_payment_succeeded` of a credit pack
  (mode `payment`, `payment_status` `paid`): grant the pack's credits, keyed by the session id,
  so the same session through two events still grants once;
- `customer.subscription.created|updated|deleted`: the tier the subscription's current state
  gives (the webhook re-reads the subscription from Stripe, so events out of order converge);
- `charge.refunded`: take back the share of a pack's credits the new refund covers;
- `invoice.payment_failed` of a subscription: starts the tier's grace period (the tier stays;
  `server.payments.grace` moves the org to the fallback tier when it ends unpaid);
- `invoice.paid` of a subscription: ends a grace period and grants the tier's included credits
  for the period, keyed by the invoice id.

Anything else is `Ignore`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing.credit_packs import CreditPack
from foundation.tiers import Tier

CHECKOUT_PAID = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
SUBSCRIPTION = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
KEEPS_TIER = frozenset({"active", "trialing", "past_due"})
"""Subscription statuses that keep the paid tier. `past_due` is Stripe retrying a failed payment,
for at most the tier's grace period (`server.payments.grace`). When Stripe gives up first it
cancels the subscription or marks it `unpaid` (the account's revenue-recovery setting), and the
org falls back to `FALLBACK_TIER`."""
FALLBACK_TIER = Tier.FREE
"""The tier of an org whose subscription ended (canceled, unpaid, expired)."""


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str


@dataclass(frozen=True, slots=True)
class GrantCredits:
    org_id: str
    amount: int
    key: str
    pack_id: str


@dataclass(frozen=True, slots=True)
class SyncSubscription:
    """Re-read subscription `subscription_id` and set the org's tier from its current state."""

    subscription_id: str
    org_id: str | None
    customer_id: str


@dataclass(frozen=True, slots=True)
class TakeBackCredits:
    org_id: str | None
    customer_id: str | None
    amount: int
    key: str
    charge_id: str


@dataclass(frozen=True, slots=True)
class RecordPaymentFailed:
    customer_id: str
    invoice_id: str
    attempt_count: int
    next_payment_attempt: int | None
    subscription_id: str | None = None
    created: int = 0
    """The event's time (Unix seconds): the grace period counts from it."""


@dataclass(frozen=True, slots=True)
class InvoicePaid:
    """A subscription invoice was paid: clear any grace period, grant the included credits once."""

    customer_id: str
    invoice_id: str
    subscription_id: str
    created: int


Action = Ignore | GrantCredits | SyncSubscription | TakeBackCredits | RecordPaymentFailed | InvoicePaid


def action_for(
    event_type: str,
    obj: Mapping[str, Any],
    previous: Mapping[str, Any],
    packs: Mapping[str, CreditPack],
    *,
    created: int = 0,
) -> Action:
    """The action an event calls for. `obj` is `event.data.object`, `previous` its
    `previous_attributes` (empty when the event has none), `created` the event's time."""
    if event_type in CHECKOUT_PAID:
        return _checkout(obj, packs)
    if event_type in SUBSCRIPTION:
        return SyncSubscription(str(obj["id"]), _metadata(obj).get("org_id"), _id(obj["customer"]))
    if event_type == "charge.refunded":
        return _refund(obj, previous, packs)
    if event_type == "invoice.payment_failed":
        if not obj.get("customer"):
            return Ignore("an invoice without a customer")
        return RecordPaymentFailed(
            _id(obj["customer"]),
            str(obj["id"]),
            int(obj.get("attempt_count") or 0),
            obj.get("next_payment_attempt"),
            invoice_subscription(obj),
            created,
        )
    if event_type == "invoice.paid":
        subscription = invoice_subscription(obj)
        if not obj.get("customer") or subscription is None:
            return Ignore("an invoice of no subscription")
        return InvoicePaid(_id(obj["customer"]), str(obj["id"]), subscription, created)
    return Ignore(f"{event_type} is not acted on")


def invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details.subscription` (API
    2025-03-31 on), or the older top-level `subscription`."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    ref = details.get("subscription") or invoice.get("subscription")
    return _id(ref) if ref else None


def _checkout(session: Mapping[str, Any], packs: Mapping[str, CreditPack]) -> Action:
    if session.get("mode") != "payment":
        return Ignore("a subscription checkout: the subscription events set the tier")
    if session.get("payment_status") != "paid":
        return Ignore(f"checkout not paid yet ({session.get('payment_status')})")
    metadata = _metadata(session)
    org_id = metadata.get("org_id") or session.get("client_reference_id")
    pack = packs.get(metadata.get("pack", ""))
    if not org_id or pack is None:
        return Ignore("a checkout Patchbay did not create (no org_id or unknown pack)")
    return GrantCredits(str(org_id), pack.credits, f"stripe:checkout:{session['id']}", pack.id)


def _refund(
    charge: Mapping[str, Any], previous: Mapping[str, Any], packs: Mapping[str, CreditPack]
) -> Action:
    metadata = _metadata(charge)
    pack = packs.get(metadata.get("pack", ""))
    if pack is None:
        return Ignore("a refund of a charge that bought no credit pack")
    refunded = int(charge["amount_refunded"])
    before = int(previous.get("amount_refunded", 0))
    amount = pack.credits_for_refund(refunded) - pack.credits_for_refund(before)
    if amount <= 0:
        return Ignore("no new refunded amount")
    customer = charge.get("customer")
    # The key names the running total refunded: each step of a partial refund takes back once.
    return TakeBackCredits(
        metadata.get("org_id"),
        _id(customer) if customer else None,
        amount,
        f"stripe:refund:{charge['id']}:{refunded}",
        str(charge["id"]),
    )


def tier_for(subscription: Mapping[str, Any], tier_prices: Mapping[Tier, tuple[str, ...]]) -> Tier | None:
    """The tier a subscription in its current state gives; None when none of its prices names a tier."""
    if subscription.get("status") not in KEEPS_TIER:
        return FALLBACK_TIER
    items = subscription.get("items") or {}
    prices = {str(item["price"]["id"]) for item in items.get("data", [])}
    for tier, ids in tier_prices.items():
        if ids[0] in prices:
            return tier
    return None


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata") or {})


def _id(ref: Any) -> str:
    """An expandable field: an id, or the expanded object."""
    return str(ref["id"] if isinstance(ref, Mapping) else ref)
