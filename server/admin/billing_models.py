"""The response bodies of the billing admin API (`server.admin.billing`), as Pydantic models so the
OpenAPI schema documents them. The JSON is what `billing.statement` writes for the CLI's `--json`
(exact USD strings beside integer micro-USD, times as ISO 8601 strings); these models describe it
and do not change it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Unit = Literal["micro-USD"]


class BalanceOut(BaseModel):
    """`patchbay credits balance --json`."""

    org_id: str
    unit: Unit = "micro-USD"
    balance: str = Field(description="Exact USD: grants, purchases, refunds and adjustments minus settles.")
    held: str = Field(description="Exact USD reserved by open holds.")
    available: str = Field(description="Exact USD: balance minus held; never negative.")
    balance_micro_usd: int
    held_micro_usd: int
    available_micro_usd: int
    open_holds: int = Field(description="How many holds are open.")


class HoldOut(BaseModel):
    hold_id: str
    amount_usd: str
    amount_micro_usd: int
    created_at: str
    expires_at: str = Field(description="When the sweeper releases it if nothing closed it.")
    details: dict[str, Any]


class BalanceWithHoldsOut(BalanceOut):
    holds: list[HoldOut] = Field(description="The open holds, oldest first, at most 100.")


class EntryOut(BaseModel):
    """One ledger entry, as `patchbay ledger --json` prints it."""

    id: str
    org_id: str
    kind: str = Field(description="grant, purchase, hold, settle, release, refund or adjustment.")
    amount_usd: str
    amount_micro_usd: int
    effect_micro_usd: int = Field(description="What the entry did to the balance (signed).")
    hold_id: str | None
    idempotency_key: str
    details: dict[str, Any]
    created_at: str
    expires_at: str | None


class LedgerPageOut(BaseModel):
    org_id: str
    since: str
    until: str
    entries: list[EntryOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: no more.")


class CostGroupOut(BaseModel):
    key: str | None = Field(description="The billing source, provider or agent id; null: none recorded.")
    label: str | None = Field(description="The agent's name for `by=agent`, else the key.")
    segments: int
    cost_usd: str
    cost_micro_usd: int


class CostDayOut(BaseModel):
    day: str = Field(description="The UTC day, `YYYY-MM-DD`.")
    key: str | None
    cost_micro_usd: int


class CostsOut(BaseModel):
    org_id: str
    since: str
    until: str
    by: Literal["source", "provider", "agent"]
    unit: Unit = "micro-USD"
    total_usd: str
    total_micro_usd: int
    groups: list[CostGroupOut] = Field(description="Largest first.")
    days: list[CostDayOut] = Field(description="Per UTC day and group, for a chart.")


class GrantOut(BaseModel):
    entry: EntryOut
    idempotency_key: str
    replayed: bool = Field(description="True: the key was used before; nothing was written.")
    balance: BalanceOut
