"""Admin endpoints for orgs and their server API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from billing import report
from foundation.db import utcnow
from foundation.orgs import Tier
from server import accounts
from server.access.caller import Caller
from server.admin.auth import admin_caller, require_admin
from server.services import Services

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(admin_caller)]


class OrgCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    tier: Tier = Tier.FREE


class OrgOut(BaseModel):
    id: str
    name: str
    tier: str
    created_at: datetime


class ApiKeyCreate(BaseModel):
    agent: str | None = None
    name: str | None = Field(default=None, max_length=128)


class ApiKeyOut(BaseModel):
    id: str
    org_id: str
    agent: str | None
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


@router.post("/orgs", status_code=201, response_model=OrgOut)
async def create_org(body: OrgCreate, svc: ServicesDep) -> OrgOut:
    async with svc.db.session() as s:
        info = await accounts.create_org(s, body.name, body.tier)
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
        issued = await accounts.create_api_key(s, org, agent=body.agent, name=body.name)
    return IssuedKeyOut(**_key_fields(issued.info), key=issued.key)


@router.get("/orgs/{org}/api-keys", response_model=list[ApiKeyOut])
async def list_api_keys(org: str, svc: ServicesDep) -> list[ApiKeyOut]:
    async with svc.db.session() as s:
        return [ApiKeyOut(**_key_fields(k)) for k in await accounts.list_api_keys(s, org)]


@router.delete("/orgs/{org}/api-keys/{key_id}", response_model=ApiKeyOut)
async def revoke_api_key(org: str, key_id: str, svc: ServicesDep) -> ApiKeyOut:
    async with svc.db.session() as s:
        info = await accounts.revoke_api_key(s, org, key_id)
    if svc.gateway is not None:
        # Other processes learn of it through the change poll; this one stops accepting it now.
        svc.gateway.api_keys.drop_key(info.id)
    return ApiKeyOut(**_key_fields(info))


def _key_fields(k: accounts.ApiKeyInfo) -> dict[str, object]:
    return {
        "id": k.id,
        "org_id": k.org_id,
        "agent": k.agent,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
    }


class UsageEntryOut(BaseModel):
    group: dict[str, str | None]
    totals: dict[str, int | float]


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
        entries=[UsageEntryOut(group=e.group, totals=e.totals) for e in entries],
    )
