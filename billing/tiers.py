"""The per-tier policy table: what each subscription tier may route to and how it is charged.

The data lives in `billing/data/tiers.json`, validated with pydantic on load into frozen
`TierPolicy` values; docs/billing.md#tiers-and-what-they-charge shows it as a table that a
test keeps equal to `markdown_table(default_table())`. The rules that apply it are in
`billing.policy`.

A row also carries the tier's commercial terms: its Stripe subscription prices, the credits
included per paid period, how long a failed payment keeps the tier (grace period) and the tier
it falls back to then. Every term has a default, so a table written before the terms existed
still loads. Price ids belong to one Stripe account, so the packaged table has none: the
operator names them in PATCHBAY_STRIPE_TIER_PRICES and `with_prices` puts them in the table the
server runs with (`Services.tiers`), the one place checkout, the webhook and the plans page read.

Every `foundation.tiers.Tier` must have a row, so a tier can never fall through to a default
by accident; a tier name no row knows (a hand-edited database) gets the `free` row, the most
restrictive, since money fails closed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.money import format_usd, parse_usd
from foundation.errors import RequestError
from foundation.tiers import Tier

TIERS_PATH = Path(__file__).parent / "data" / "tiers.json"
SUPPORTED_VERSIONS = frozenset({1})
BASIS_POINTS = 10_000
"""100% in basis points: a markup of 2000 bp is +20%."""
MAX_BP = 10 * BASIS_POINTS
FAIL_CLOSED_TIER = Tier.FREE
DEFAULT_GRACE_DAYS = 7
MAX_GRACE_DAYS = 90


class ByokModel(StrEnum):
    """What a BYOK or private segment is charged per request (the subscription is Stripe's business)."""

    NONE = "none"
    SURCHARGE = "surcharge"
    """A percentage (`byok_surcharge_bp`) of the segment's notional price: what it would have cost at list price."""


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """One tier's row. Amounts are integers: basis points and micro-USD."""

    tier: Tier
    platform_allowed: bool
    byok_allowed: bool
    private_allowed: bool
    markup_bp: int
    """Added to the list price of a platform segment, in basis points (2000 = +20%)."""
    byok_model: ByokModel
    byok_surcharge_bp: int
    """With `ByokModel.SURCHARGE`: the share of the notional price charged, in basis points; else 0."""
    voice_fee: int | None
    """micro-USD per minute of platform voice (audio of platform-billed stt and tts segments), or None."""
    max_connections: int | None
    """The org's own connections the tier allows; None: no limit."""
    stripe_prices: tuple[str, ...] = ()
    """The Stripe price ids of the tier's subscription; the first names the tier in a subscription,
    any more are added to its checkout (a flat BYOK platform fee). Empty: not sold here."""
    included_credits: int = 0
    """micro-USD of credits granted once per paid subscription invoice (bundled tiers); 0: none."""
    grace_period_days: int = DEFAULT_GRACE_DAYS
    """Days a failed subscription payment keeps the tier before the org moves to `fallback_tier`."""
    fallback_tier: Tier = FAIL_CLOSED_TIER
    """Where the org goes when its grace period ends unpaid."""

    def with_byok_override(self) -> TierPolicy:
        """The org keeps BYOK whatever its tier (migrated with `byokEnabled: true`); charges are the tier's."""
        return replace(self, byok_allowed=True)


class _TierWire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform_allowed: bool
    byok_allowed: bool
    private_allowed: bool
    markup_bp: int = Field(ge=0, le=MAX_BP)
    byok_model: ByokModel
    byok_surcharge_bp: int = Field(default=0, ge=0, le=MAX_BP)
    voice_fee_usd_per_minute: str | None
    max_connections: int | None = Field(ge=0)
    stripe_prices: list[str] = Field(default_factory=list)
    included_credits_usd: str | None = None
    grace_period_days: int = Field(default=DEFAULT_GRACE_DAYS, ge=0, le=MAX_GRACE_DAYS)
    fallback_tier: Tier = FAIL_CLOSED_TIER

    @model_validator(mode="after")
    def _surcharge_matches_model(self) -> _TierWire:
        if (self.byok_model is ByokModel.SURCHARGE) != (self.byok_surcharge_bp > 0):
            raise ValueError("byok_surcharge_bp is set (> 0) exactly when byok_model is `surcharge`")
        return self


class _TableWire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    notes: str = ""
    tiers: dict[Tier, _TierWire]


TierTable = Mapping[Tier, TierPolicy]


def table_from_json(raw: str | bytes) -> TierTable:
    """Parse and check a table: a supported version, one row per `Tier`, exact fees."""
    wire = _TableWire.model_validate_json(raw)
    if wire.version not in SUPPORTED_VERSIONS:
        raise ValueError(f"tier table version {wire.version} is not supported")
    missing = [t.value for t in Tier if t not in wire.tiers]
    if missing:
        raise ValueError(f"the tier table has no row for {', '.join(missing)}")
    table = MappingProxyType({tier: _policy(tier, wire.tiers[tier]) for tier in Tier})
    _check_prices(table)
    return table


def with_prices(table: TierTable, prices: Mapping[Tier, tuple[str, ...]]) -> TierTable:
    """`table` with the Stripe prices of the tiers `prices` names replaced (PATCHBAY_STRIPE_TIER_PRICES)."""
    merged = MappingProxyType(
        {t: replace(p, stripe_prices=tuple(prices[t])) if t in prices else p for t, p in table.items()}
    )
    _check_prices(merged)
    return merged


def tier_prices(table: TierTable) -> dict[Tier, tuple[str, ...]]:
    """The tiers sold here (with a Stripe price) -> their price ids."""
    return {t: p.stripe_prices for t, p in table.items() if p.stripe_prices}


def _check_prices(table: TierTable) -> None:
    primaries = [p.stripe_prices[0] for p in table.values() if p.stripe_prices]
    if len(set(primaries)) != len(primaries):
        raise ValueError(
            "each tier needs its own first Stripe price id: it is how a subscription names its tier"
        )


def tier_allowing_more(table: TierTable, connections: int) -> TierPolicy | None:
    """The first tier (in table order) that allows more than `connections` connections."""
    return next(
        (p for p in table.values() if p.max_connections is None or p.max_connections > connections), None
    )


def _usd(value: str | None, param: str) -> int | None:
    try:
        return parse_usd(value, param=param) if value is not None else None
    except RequestError as exc:
        raise ValueError(str(exc)) from None


def _policy(tier: Tier, row: _TierWire) -> TierPolicy:
    voice_fee = _usd(row.voice_fee_usd_per_minute, f"{tier.value}.voice_fee_usd_per_minute")
    return TierPolicy(
        tier=tier,
        platform_allowed=row.platform_allowed,
        byok_allowed=row.byok_allowed,
        private_allowed=row.private_allowed,
        markup_bp=row.markup_bp,
        byok_model=row.byok_model,
        byok_surcharge_bp=row.byok_surcharge_bp,
        voice_fee=voice_fee,
        max_connections=row.max_connections,
        stripe_prices=tuple(row.stripe_prices),
        included_credits=_usd(row.included_credits_usd, f"{tier.value}.included_credits_usd") or 0,
        grace_period_days=row.grace_period_days,
        fallback_tier=row.fallback_tier,
    )


@functools.cache
def default_table() -> TierTable:
    """The packaged table, loaded once per process."""
    return table_from_json(TIERS_PATH.read_bytes())


def policy_for(tier: str, table: TierTable | None = None) -> TierPolicy:
    """The row of the tier named `tier`; an unknown name gets the most restrictive row (`free`)."""
    rows = default_table() if table is None else table
    found = rows.get(tier)  # type: ignore[call-overload]
    if found is not None:  # a str enum: its value finds the row with no `Tier(...)` call
        return found  # type: ignore[no-any-return]
    try:
        return rows[Tier(tier)]
    except ValueError:
        return rows[FAIL_CLOSED_TIER]


def percent(bp: int) -> str:
    """Basis points as an exact percentage: 2000 -> `20%`, 250 -> `2.5%`."""
    return f"{(Decimal(bp) / 100).normalize():f}%"


MARKDOWN_HEADER = (
    "| tier | platform models | BYOK | private endpoints | markup on platform | BYOK per-request charge "
    "| platform voice fee | max connections | included credits per period | grace period | falls back to "
    "| Stripe prices |"
)


def markdown_table(table: TierTable) -> str:
    """The table as docs/billing.md shows it (a test compares the two)."""
    lines = [MARKDOWN_HEADER, "|" + "---|" * MARKDOWN_HEADER.count(" |")]
    for tier in Tier:
        p = table[tier]
        byok = (
            "none"
            if p.byok_model is ByokModel.NONE
            else f"{percent(p.byok_surcharge_bp)} of the notional price"
        )
        fee = "none" if p.voice_fee is None else f"{format_usd(p.voice_fee)} USD/min"
        cells = [
            f"`{tier.value}`",
            _yes(p.platform_allowed),
            _yes(p.byok_allowed),
            _yes(p.private_allowed),
            percent(p.markup_bp),
            byok,
            fee,
            "no limit" if p.max_connections is None else str(p.max_connections),
            f"{format_usd(p.included_credits)} USD" if p.included_credits else "none",
            f"{p.grace_period_days} days",
            f"`{p.fallback_tier.value}`",
            " + ".join(f"`{i}`" for i in p.stripe_prices) or "set by the operator",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _yes(allowed: bool) -> str:
    return "yes" if allowed else "no"
