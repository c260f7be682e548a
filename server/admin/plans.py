"""`GET /admin/v1/plans`: the packaged tier table and credit packs, for the plan comparison page.

Any signed-in caller may read it (it is the same for every org, and docs/billing.md publishes
it): what each tier may route to and what it charges, whether the tier can be subscribed to
here (Stripe is configured and the tier has a price in PATCHBAY_STRIPE_TIER_PRICES), its
commercial terms (credits included per paid period, grace period, fallback tier), and the
credit packs on sale. `purchases` is false when PATCHBAY_STRIPE_SECRET_KEY is unset: then
credits come from grants alone and nothing can be bought. Amounts are integers (basis points,
micro-USD, cents) beside exact decimal strings, never floats.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from billing.credit_packs import MICRO_USD_PER_CENT, CreditPack, default_packs
from billing.money import format_usd
from billing.tiers import TierPolicy, percent
from foundation.tiers import Tier
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin", "billing"])


class TierOut(BaseModel):
    tier: str
    platform_allowed: bool
    byok_allowed: bool
    private_allowed: bool
    markup_bp: int = Field(description="Added to the list price of platform segments, in basis points.")
    markup: str = Field(description="The markup as a percentage, e.g. `20%`.")
    byok_model: str = Field(description="`none` or `surcharge`: what a BYOK or private segment is charged.")
    byok_surcharge_bp: int
    byok_surcharge: str | None = Field(description="The surcharge as a percentage; null without one.")
    voice_fee_micro_usd: int | None = Field(description="Per minute of platform voice; null: none.")
    voice_fee_usd: str | None
    max_connections: int | None = Field(description="The org's own connections; null: no limit.")
    included_credits_micro_usd: int = Field(
        description="Credits granted per paid subscription period; 0: none."
    )
    included_credits_usd: str | None = Field(description="The same as exact USD; null: none.")
    grace_period_days: int = Field(description="Days a failed subscription payment keeps the tier.")
    fallback_tier: str = Field(description="The tier an org moves to when its grace period ends unpaid.")
    subscribable: bool = Field(description="A subscription checkout can be started for this tier here.")


class PackOut(BaseModel):
    id: str
    name: str
    price_cents: int
    price_usd: str
    credits_micro_usd: int
    credits_usd: str


class PlansOut(BaseModel):
    purchases: bool = Field(
        description="False: PATCHBAY_STRIPE_SECRET_KEY is unset and nothing can be bought."
    )
    tiers: list[TierOut]
    credit_packs: list[PackOut]


def tier_out(p: TierPolicy, subscribable: bool) -> TierOut:
    surcharge = p.byok_surcharge_bp
    return TierOut(
        tier=p.tier.value,
        platform_allowed=p.platform_allowed,
        byok_allowed=p.byok_allowed,
        private_allowed=p.private_allowed,
        markup_bp=p.markup_bp,
        markup=percent(p.markup_bp),
        byok_model=p.byok_model.value,
        byok_surcharge_bp=surcharge,
        byok_surcharge=percent(surcharge) if surcharge else None,
        voice_fee_micro_usd=p.voice_fee,
        voice_fee_usd=None if p.voice_fee is None else format_usd(p.voice_fee),
        max_connections=p.max_connections,
        included_credits_micro_usd=p.included_credits,
        included_credits_usd=format_usd(p.included_credits) if p.included_credits else None,
        grace_period_days=p.grace_period_days,
        fallback_tier=p.fallback_tier.value,
        subscribable=subscribable,
    )


def pack_out(p: CreditPack) -> PackOut:
    price = p.price_cents * MICRO_USD_PER_CENT
    return PackOut(
        id=p.id,
        name=p.name,
        price_cents=p.price_cents,
        price_usd=format_usd(price),
        credits_micro_usd=p.credits,
        credits_usd=format_usd(p.credits),
    )


@router.get("/plans", response_model=PlansOut)
async def plans(svc: ServicesDep) -> PlansOut:
    """The tier table and the credit packs; which tiers can be subscribed to on this server."""
    payments = svc.payments
    table = svc.tiers
    priced = {t for t, p in table.items() if p.stripe_prices} if payments else set()
    return PlansOut(
        purchases=payments is not None,
        tiers=[tier_out(table[t], t in priced) for t in Tier],
        credit_packs=[pack_out(p) for p in default_packs().values()],
    )
