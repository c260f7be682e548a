"""Admin endpoints for orgs and their server API keys."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from billing import report
from billing.money import format_usd
from foundation.db import utcnow
from foundation.tiers import Tier
from server import accounts
from server.access.caller import Caller
from server.admin.auth import admin_caller, require_admin
from server.budgets import parse_cap
from server.services import Services

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(admin_caller)]


class OrgCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    tier: Tier | None = Field(default=None, description="Default: the server's PATCHBAY_DEFAULT_TIER.")


class OrgOut(BaseModel):
    id: str
    name: str
    tier: str
    created_at: datetime


class ApiKeyCreate(BaseModel):
    name: str = Field(description="1-128 printable characters, unique among the org's live keys.")
    agent: str | None = Field(default=None, description="Bind the key to this agent of the org.")
    models: list[str] | None = Field(
        default=None,
        description="The models the key may ask for, as clients send them in `model` (refs, aliases, "
        "`agent:NAME`, `default`); null or empty: any. At most 100 entries of 200 characters.",
    )
    expires: str | None = Field(
        default=None, description="When the key stops working: an ISO 8601 time or a span from now (`30d`)."
    )
    spend_limit: str | int | None = Field(
        default=None,
        description="What requests with the key may be charged per calendar month (UTC), exact USD "
        "(a decimal string, or a whole number); null: no limit of its own.",
    )


class ApiKeyOut(BaseModel):
    id: str
    org_id: str
    name: str = Field(description="The key's name; its prefix for keys made before names were required.")
    prefix: str
    agent: str | None
    models: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Written behind the requests: up to a minute late.")
    revoked_at: datetime | None
    status: Literal["active", "expired", "revoked"]
    spend_limit: str | None = Field(
        default=None, description="Monthly (UTC) spend limit, exact USD; null: none."
    )
    spend_limit_micro_usd: int | None = None
    spent_this_month: str = Field(default="0.00", description="Settled charges this month (UTC), exact USD.")
    spent_this_month_micro_usd: int = 0


class IssuedKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


@router.post("/orgs", status_code=201, response_model=OrgOut)
async def create_org(body: OrgCreate, svc: ServicesDep) -> OrgOut:
    async with svc.db.session() as s:
        info = await accounts.create_org(s, body.name, body.tier or svc.settings.default_tier)
    return OrgOut(id=info.id, name=info.name, tier=info.tier, created_at=info.created_at)


@router.get("/orgs", response_model=list[OrgOut])
async def list_orgs(svc: ServicesDep, caller: CallerDep) -> list[OrgOut]:
    """Every org for the operator; the caller's own orgs for anyone else."""
    async with svc.db.session() as s:
        orgs = await accounts.list_orgs(s)
    return [
        OrgOut(id=o.id, name=o.name, tier=o.tier, created_at=o.created_at)
        for o in orgs
        if caller.is_operator or o.id in caller.grants
    ]


@router.post("/orgs/{org}/api-keys", status_code=201, response_model=IssuedKeyOut)
async def create_api_key(org: str, body: ApiKeyCreate, svc: ServicesDep) -> IssuedKeyOut:
    async with svc.db.session() as s:
        limit = body.spend_limit
        issued = await accounts.create_api_key(
            s,
            org,
            name=body.name,
            agent=body.agent,
            models=body.models,
            expires=body.expires,
            spend_limit=parse_cap(str(limit) if limit is not None else None, param="spend_limit"),
        )
    svc.spend_caps.drop_org(issued.info.org_id)
    return IssuedKeyOut(**_key_fields(issued.info), key=issued.key)


@router.get("/orgs/{org}/api-keys", response_model=list[ApiKeyOut])
async def list_api_keys(org: str, svc: ServicesDep) -> list[ApiKeyOut]:
    async with svc.db.session() as s:
        return [
            ApiKeyOut(**_key_fields(k))
            for k in await accounts.list_api_keys(s, org, month_at=svc.spend_caps.now())
        ]


@router.get("/orgs/{org}/api-keys/{key_id}", response_model=ApiKeyOut)
async def get_api_key(org: str, key_id: str, svc: ServicesDep) -> ApiKeyOut:
    async with svc.db.session() as s:
        return ApiKeyOut(
            **_key_fields(await accounts.get_api_key(s, org, key_id, month_at=svc.spend_caps.now()))
        )


@router.delete("/orgs/{org}/api-keys/{key_id}", response_model=ApiKeyOut)
async def revoke_api_key(org: str, key_id: str, svc: ServicesDep) -> ApiKeyOut:
    async with svc.db.session() as s:
        info = await accounts.revoke_api_key(s, org, key_id)
    if svc.gateway is not None:
        # Other processes learn of it through the change poll; this one stops accepting it now.
        svc.gateway.api_keys.drop_key(info.id)
    return ApiKeyOut(**_key_fields(info))


def _key_fields(k: accounts.ApiKeyInfo) -> dict[str, object]:
    return dataclasses.asdict(k)


class UsageEntryOut(BaseModel):
    group: dict[str, str | None]
    totals: dict[str, int | float]
    cost_usd: str = Field(description="`totals.cost_micro_usd` as an exact decimal of USD.")


class UsageOut(BaseModel):
    org_id: str
    since: datetime
    until: datetime
    group_by: list[str]
    entries: list[UsageEntryOut]


@router.get("/orgs/{org}/usage", response_model=UsageOut)
async def usage(
    org: str, svc: ServicesDep, since: str = "24h", until: str | None = None, group_by: str = ""
) -> UsageOut:
    """What the org's segments consumed, grouped (billing_source, segment, provider, model, day...)."""
    start, end = report.window(since, until, now=utcnow())
    groups = report.parse_groups(group_by)
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        entries = await report.summarize(s, org_id, since=start, until=end, group_by=groups)
    return UsageOut(
        org_id=org_id,
        since=start,
        until=end,
        group_by=groups,
        entries=[
            UsageEntryOut(
                group=e.group, totals=e.totals, cost_usd=format_usd(int(e.totals["cost_micro_usd"]))
            )
            for e in entries
        ],
    )
