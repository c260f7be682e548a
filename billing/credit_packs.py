"""Credit packs: what an org can buy once (a Stripe Checkout payment) and the credits it gets.

The list is data, `billing/data/credit_packs.json`: each pack has an id, a name, the price the
buyer pays and the credits it grants, both in USD as exact decimals (`billing.money`). The
price must be a whole number of cents (Stripe charges cents); the credits are any micro-USD
amount, so a pack may carry a bonus. docs/billing.md lists the packs; a test keeps them equal.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from billing.money import AmountError, format_usd, parse_usd
from foundation.errors import NotFoundError

PACKS_PATH = Path(__file__).parent / "data" / "credit_packs.json"
MICRO_USD_PER_CENT = 10_000


@dataclass(frozen=True, slots=True)
class CreditPack:
    id: str
    name: str
    price_cents: int
    """What the buyer pays, in US cents (Stripe's `unit_amount`)."""
    credits: int
    """What the org is granted, in micro-USD."""

    def credits_for_refund(self, refunded_cents: int) -> int:
        """The share of the credits a refund of `refunded_cents` takes back, rounded down."""
        return self.credits * refunded_cents // self.price_cents


def parse_packs(data: dict[str, Any]) -> MappingProxyType[str, CreditPack]:
    if data.get("version") != 1:
        raise ValueError("credit_packs.json: unsupported version (expected 1)")
    packs: dict[str, CreditPack] = {}
    for raw in data["packs"]:
        try:
            price = parse_usd(raw["price_usd"], param=f"{raw['id']}.price_usd")
            credits = parse_usd(raw["credits_usd"], param=f"{raw['id']}.credits_usd")
        except AmountError as exc:  # JSON numbers with a fraction are floats: refused like any float
            raise ValueError(f"credit_packs.json: {exc}") from None
        if price <= 0 or price % MICRO_USD_PER_CENT or credits <= 0:
            raise ValueError(
                f"credit pack {raw['id']!r}: the price must be whole cents and both must be above 0"
            )
        if raw["id"] in packs:
            raise ValueError(f"credit pack {raw['id']!r} is listed twice")
        packs[raw["id"]] = CreditPack(raw["id"], raw["name"], price // MICRO_USD_PER_CENT, credits)
    return MappingProxyType(packs)


@functools.cache
def default_packs() -> MappingProxyType[str, CreditPack]:
    return parse_packs(json.loads(PACKS_PATH.read_text()))


def pack(pack_id: str) -> CreditPack:
    found = default_packs().get(pack_id)
    if found is None:
        raise NotFoundError(
            f"no credit pack {pack_id!r}; the packs are: {', '.join(default_packs())}", param="pack"
        )
    return found


def markdown_table(packs: MappingProxyType[str, CreditPack]) -> str:
    lines = ["| pack | price | credits |", "|---|---|---|"]
    for p in packs.values():
        lines.append(
            f"| `{p.id}` | {format_usd(p.price_cents * MICRO_USD_PER_CENT)} USD | {format_usd(p.credits)} USD |"
        )
    return "\n".join(lines)
