"""What each Stripe event means, as pure functions; and the tier-prices setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from billing.credit_packs import default_packs
from foundation.tiers import Tier
from server.payments import events as ev
from server.settings import Settings, parse_tier_prices

PACKS = default_packs()
PRICES = {Tier.STARTER: ("price_s", "price_fee"), Tier.PRO: ("price_p",)}


def session(**over: Any) -> dict[str, Any]:
    base = {
        "id": "cs_1",
        "mode": "payment",
        "payment_status": "paid",
        "client_reference_id": "org_a",
        "metadata": {"org_id": "org_a", "pack": "usd10"},
    }
    return {**base, **over}


def test_a_paid_pack_checkout_grants_keyed_by_the_session() -> None:
    for kind in ev.CHECKOUT_PAID:
        assert ev.action_for(kind, session(), {}, PACKS) == ev.GrantCredits(
            "org_a", 10_000_000, "stripe:checkout:cs_1", "usd10"
        )


@pytest.mark.parametrize(
    "obj",
    [
        session(payment_status="unpaid"),
        session(mode="subscription"),
        session(metadata={"org_id": "org_a", "pack": "gone"}),
        session(metadata={}, client_reference_id=None),
    ],
)
def test_checkouts_that_grant_nothing(obj: dict[str, Any]) -> None:
    assert isinstance(ev.action_for("checkout.session.completed", obj, {}, PACKS), ev.Ignore)


def test_a_refund_takes_back_only_the_new_part() -> None:
    charge = {
        "id": "ch_1",
        "amount_refunded": 1000,
        "customer": "cus_1",
        "metadata": {"org_id": "org_a", "pack": "usd50"},
    }
    action = ev.action_for("charge.refunded", charge, {"amount_refunded": 400}, PACKS)
    assert action == ev.TakeBackCredits("org_a", "cus_1", 6_000_000, "stripe:refund:ch_1:1000", "ch_1")
    no_pack = {**charge, "metadata": {}}
    assert isinstance(ev.action_for("charge.refunded", no_pack, {}, PACKS), ev.Ignore)


def sub(status: str, *prices: str) -> dict[str, Any]:
    return {"status": status, "items": {"data": [{"price": {"id": p}} for p in prices]}}


def test_the_tier_of_a_subscription() -> None:
    assert ev.tier_for(sub("active", "price_fee", "price_s"), PRICES) is Tier.STARTER
    assert ev.tier_for(sub("past_due", "price_p"), PRICES) is Tier.PRO
    assert ev.tier_for(sub("trialing", "price_p"), PRICES) is Tier.PRO
    for ended in ("canceled", "unpaid", "incomplete_expired", "incomplete", "paused"):
        assert ev.tier_for(sub(ended, "price_p"), PRICES) is ev.FALLBACK_TIER
    assert ev.tier_for(sub("active", "price_fee"), PRICES) is None, "a shared fee price names no tier"
    action = ev.action_for(
        "customer.subscription.deleted",
        {"id": "sub_1", "customer": {"id": "cus_1"}, "metadata": {}},
        {},
        PACKS,
    )
    assert action == ev.SyncSubscription("sub_1", None, "cus_1")


def test_other_events_are_ignored() -> None:
    assert ev.action_for("payout.paid", {"id": "po_1"}, {}, PACKS) == ev.Ignore("payout.paid is not acted on")


def test_tier_prices_setting() -> None:
    assert parse_tier_prices(" starter = price_s + price_fee , pro=price_p ") == PRICES
    assert parse_tier_prices("") == {}
    for bad in ("gold=price_g", "pro", "pro=", "pro=a,pro=b", "pro=a,starter=a+b"):
        with pytest.raises(ValueError):
            parse_tier_prices(bad)
    with pytest.raises(ValidationError, match="unknown tier"):
        Settings(stripe_tier_prices="gold=price_g")
