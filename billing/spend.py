"""Monthly budgets and per-key spend limits: the pure rule and the errors it raises.

A cap is an integer of micro-USD per calendar month (UTC). A request that may be charged is
refused when what was already charged this month, plus what requests in flight have reserved,
plus this request's hold would exceed the cap; a chargeable request whose hold is 0 (a charge
not known before it runs, such as a voice fee) still needs one micro-USD of room. A request
that cannot be charged anything (BYOK on a tier without a per-request charge) is never refused
by a cap, whatever the cap: it is not even checked. See docs/billing.md#budgets-and-spend-limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.preflight import InsufficientCreditsError


def month_of(when: datetime) -> str:
    """The calendar month (UTC) a time falls in, as spend totals key it: `2026-12`."""
    return f"{when.year:04d}-{when.month:02d}"


@dataclass(frozen=True, slots=True)
class Usage:
    """One cap's figures for the current month (micro-USD)."""

    limit: int
    spent: int
    """Charged this month, as far as this process knows (settled charges)."""
    reserved: int = 0
    """Holds of this process's requests in flight against the cap."""

    def refuses(self, hold: int) -> bool:
        """Whether a chargeable request holding `hold` would go over the cap."""
        return self.spent + self.reserved + max(hold, 1) > self.limit


class BudgetExceededError(InsufficientCreditsError):
    """The org's monthly budget is reached (a 402 with code `budget_exceeded`)."""

    code = "budget_exceeded"

    def __init__(self, org_id: str, usage: Usage, hold: int) -> None:
        super().__init__(
            "the organisation's monthly budget is reached for this month (UTC); an admin of the org can raise it "
            f"with `patchbay org update {org_id} --monthly-budget USD` (or `--monthly-budget none` to remove it), "
            f'or in the admin API: PATCH /admin/v1/orgs/{org_id} {{"monthly_budget": "USD"}}',
            requested=hold,
            available=max(0, usage.limit - usage.spent - usage.reserved),
        )
        self.usage = usage


class SpendLimitExceededError(InsufficientCreditsError):
    """The API key's monthly spend limit is reached (a 402 with code `spend_limit_exceeded`)."""

    code = "spend_limit_exceeded"

    def __init__(self, org_id: str, api_key_id: str, usage: Usage, hold: int) -> None:
        super().__init__(
            f"this API key's monthly spend limit is reached for this month (UTC); an admin of the org can raise it "
            f"with `patchbay apikey update --org {org_id} {api_key_id} --spend-limit USD` (or `--spend-limit none`), "
            f'or in the admin API: PATCH /admin/v1/orgs/{org_id}/api-keys/{api_key_id} {{"spend_limit": "USD"}}',
            requested=hold,
            available=max(0, usage.limit - usage.spent - usage.reserved),
        )
        self.usage = usage
