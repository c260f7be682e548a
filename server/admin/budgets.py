"""Admin endpoints for an org's monthly budget and its API keys' spend limits.

- `GET /admin/v1/orgs/{org}/budget`: the budget and what the org was charged this calendar
  month (UTC).
- `PATCH /admin/v1/orgs/{org}` with `{"monthly_budget": "250"}` (null removes it): the org
  update route (`billing` permission). Its `tier` and `byok_override` fields are the operator's
  alone (`server.access.policy.FIELD_PERMISSIONS`; the change itself is `server.org_plan`).
- `PATCH /admin/v1/orgs/{org}/api-keys/{key_id}` with `{"spend_limit": "25"}` (null removes
  it; `keys` permission). A key's limit can also be given when it is created.

Amounts are USD as exact decimal strings (whole numbers may be JSON integers; floats never
carry money), answered both as USD strings and as integers of micro-USD. A change takes effect
in this process at once (`SpendCaps.drop_org`) and in others within their config poll.
See docs/billing.md#budgets-and-spend-limits.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from foundation.errors import ForbiddenError, RequestError
from server import accounts, budgets, org_plan
from server.access import policy
from server.admin.auth import require_admin
from server.admin.orgs import ApiKeyOut, CallerDep, ServicesDep, _key_fields
from server.services import Services

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])

Usd = str | int
"""An amount in USD: an exact decimal string, or a whole number."""


class OrgUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_budget: Usd | None = Field(
        default=None,
        description='USD per calendar month (UTC), exact decimal string such as "99.50"; null removes it.',
    )
    tier: str | None = Field(
        default=None,
        description="The org's tier, a row of the tier table (free, starter, pro, agency, enterprise). Operator only.",
    )
    byok_override: bool | None = Field(
        default=None, description="The org keeps BYOK (its own keys) whatever its tier. Operator only."
    )


class BudgetOut(BaseModel):
    org_id: str
    monthly_budget: str | None = Field(description="Exact USD; null: no budget.")
    monthly_budget_micro_usd: int | None
    month: str = Field(description="The calendar month (UTC) the spend covers, `YYYY-MM`.")
    spent_this_month: str = Field(description="Settled charges this month, exact USD.")
    spent_this_month_micro_usd: int


class OrgUpdateOut(BudgetOut):
    tier: str
    byok_override: bool = Field(description="The org keeps BYOK whatever its tier.")


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spend_limit: Usd | None = Field(
        description="What requests with the key may be charged per calendar month (UTC), exact USD; null removes it."
    )


def _amount(value: Usd | None, param: str) -> int | None:
    return budgets.parse_cap(str(value) if value is not None else None, param=param)


def _changed(svc: Services, org_id: str) -> None:
    svc.spend_caps.drop_org(org_id)


@router.get("/orgs/{org}/budget", response_model=BudgetOut)
async def get_budget(org: str, svc: ServicesDep) -> BudgetOut:
    async with svc.db.session() as s:
        info = await budgets.org_budget(s, org, now=svc.spend_caps.now())
    return BudgetOut.model_validate(info.as_json("monthly_budget"))


@router.patch("/orgs/{org}", response_model=OrgUpdateOut)
async def update_org(org: str, body: OrgUpdate, svc: ServicesDep, caller: CallerDep) -> OrgUpdateOut:
    given = body.model_fields_set
    if not given:
        raise RequestError("nothing to change: give monthly_budget, tier or byok_override")
    refusal = policy.authorize_fields(caller, "PATCH", "/admin/v1/orgs/{org}", org, given)
    if refusal is not None:
        raise ForbiddenError(refusal.message)
    if "tier" in given and body.tier is None:
        raise RequestError("tier cannot be null", param="tier")
    if "byok_override" in given and body.byok_override is None:
        raise RequestError("byok_override cannot be null", param="byok_override")
    tier = org_plan.parse_tier(body.tier) if body.tier is not None else None
    budget = _amount(body.monthly_budget, "monthly_budget") if "monthly_budget" in given else None
    now = svc.spend_caps.now()
    async with svc.db.session() as s:
        if "monthly_budget" in given:
            await budgets.set_org_budget(s, org, budget, now=now)
        plan = await org_plan.set_plan(s, org, tier=tier, byok_override=body.byok_override)
        info = await budgets.org_budget(s, org, now=now)
    _changed(svc, info.org_id)
    if plan.changed:
        svc.config_changed(plan.org_id)
    return OrgUpdateOut.model_validate({**info.as_json("monthly_budget"), **plan.as_json()})


@router.patch("/orgs/{org}/api-keys/{key_id}", response_model=ApiKeyOut)
async def update_api_key(org: str, key_id: str, body: KeyUpdate, svc: ServicesDep) -> ApiKeyOut:
    limit = _amount(body.spend_limit, "spend_limit")
    async with svc.db.session() as s:
        info = await budgets.set_key_limit(s, org, key_id, limit, now=svc.spend_caps.now())
    _changed(svc, info.org_id)
    async with svc.db.session() as s:
        key = await accounts.get_api_key(s, info.org_id, key_id, month_at=svc.spend_caps.now())
    return ApiKeyOut(**_key_fields(key))
