"""Admin endpoints for access: who am I, org admin tokens, members and invites, the audit log.

Who may call each is decided in `server.access.policy`, before any of this runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from billing import report
from foundation.audit import recent_events
from foundation.db import utcnow
from server import accounts
from server.access import tokens, users
from server.access.expiry import parse_expiry
from server.access.roles import Permission, Role, permissions_of
from server.admin.auth import require_admin
from server.admin.orgs import CallerDep, ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])
_O = "/orgs/{org}"


class OrgAccess(BaseModel):
    id: str
    name: str
    role: str
    permissions: list[str]


class MeOut(BaseModel):
    kind: str = Field(description="operator, token or user")
    label: str
    operator: bool
    orgs: list[OrgAccess]
    csrf_token: str | None = Field(
        description="Echo in X-CSRF-Token on state-changing requests (sessions only)."
    )


@router.get("/me", response_model=MeOut)
async def me(svc: ServicesDep, caller: CallerDep) -> MeOut:
    """Who this credential is and what it may do in which org (the UI hides what it may not)."""
    if caller.is_operator:
        async with svc.db.session() as s:
            orgs = await accounts.list_orgs(s)
        every = [p.value for p in Permission]
        access = [OrgAccess(id=o.id, name=o.name, role="operator", permissions=every) for o in orgs]
    else:
        access = [
            OrgAccess(id=g.org_id, name=g.org_name, role=g.role.value, permissions=permissions_of(g.role))
            for g in sorted(caller.grants.values(), key=lambda g: g.org_name)
        ]
    return MeOut(
        kind=caller.kind,
        label=caller.label,
        operator=caller.is_operator,
        orgs=access,
        csrf_token=caller.csrf_token,
    )


class TokenCreate(BaseModel):
    role: Role
    name: str | None = Field(default=None, max_length=128)
    expires: str | None = Field(
        default=None, max_length=40, description="A span (30d, 12h) or an ISO 8601 time."
    )


class TokenOut(BaseModel):
    id: str
    org_id: str
    role: str
    name: str | None
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: str


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The token itself. Shown once; only its hash is stored.")


def _token_fields(info: tokens.TokenInfo) -> dict[str, Any]:
    return {k: getattr(info, k) for k in TokenOut.model_fields}


@router.post(_O + "/admin-tokens", status_code=201, response_model=IssuedTokenOut)
async def create_admin_token(
    org: str, body: TokenCreate, svc: ServicesDep, caller: CallerDep
) -> IssuedTokenOut:
    async with svc.db.session() as s:
        row = await accounts.get_org(s, org)
        expires_at = parse_expiry(body.expires, now=utcnow())
        issued = await tokens.create_token(
            s, row, body.role, name=body.name, expires_at=expires_at, created_by=caller.label
        )
    return IssuedTokenOut(**_token_fields(issued.info), token=issued.token)


@router.get(_O + "/admin-tokens", response_model=list[TokenOut])
async def list_admin_tokens(org: str, svc: ServicesDep) -> list[TokenOut]:
    async with svc.db.session() as s:
        return [
            TokenOut(**_token_fields(t)) for t in await tokens.list_tokens(s, await accounts.get_org(s, org))
        ]


@router.delete(_O + "/admin-tokens/{token_id}", response_model=TokenOut)
async def revoke_admin_token(org: str, token_id: str, svc: ServicesDep, caller: CallerDep) -> TokenOut:
    async with svc.db.session() as s:
        info = await tokens.revoke_token(s, await accounts.get_org(s, org), token_id, actor=caller.label)
    return TokenOut(**_token_fields(info))


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: str
    joined_at: datetime


@router.get(_O + "/members", response_model=list[MemberOut])
async def list_members(org: str, svc: ServicesDep) -> list[MemberOut]:
    async with svc.db.session() as s:
        members = await users.list_members(s, await accounts.get_org(s, org))
    return [MemberOut(user_id=m.user_id, email=m.email, role=m.role, joined_at=m.joined_at) for m in members]


@router.delete(_O + "/members/{user_id}", status_code=204)
async def remove_member(org: str, user_id: str, svc: ServicesDep, caller: CallerDep) -> None:
    async with svc.db.session() as s:
        await users.remove_member(s, await accounts.get_org(s, org), user_id, actor=caller.label)


class InviteIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    role: Role


class InviteOut(BaseModel):
    id: str
    email: str
    role: str
    expires_at: datetime
    link: str = Field(
        description="Send this to the person; it works once. The secret is in the fragment, which browsers never send."
    )


@router.post(_O + "/invites", status_code=201, response_model=InviteOut)
async def create_invite(org: str, body: InviteIn, svc: ServicesDep, caller: CallerDep) -> InviteOut:
    ttl = timedelta(hours=svc.settings.invite_hours)
    async with svc.db.session() as s:
        issued = await users.invite(
            s, await accounts.get_org(s, org), body.email, body.role, ttl=ttl, created_by=caller.label
        )
    return InviteOut(
        id=issued.id,
        email=issued.email,
        role=issued.role,
        expires_at=issued.expires_at,
        link=invite_link(svc.settings.public_url, issued.token),
    )


def invite_link(public_url: str | None, token: str) -> str:
    """Where the invitee goes: the web UI, with the one-time secret in the URL fragment."""
    return f"{(public_url or '').rstrip('/')}/ui/#invite={token}"


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str
    credential: str | None
    address: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


@router.get(_O + "/audit", response_model=list[AuditOut])
async def audit(
    org: str,
    svc: ServicesDep,
    since: str = "7d",
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    """The org's audit log, newest first: who did what, with which credential, from where."""
    start = report.parse_instant(since, now=utcnow(), param="since")
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        rows = await recent_events(s, org_id, since=start, limit=limit, action=action)
    return [
        AuditOut(
            id=r.id,
            at=r.created_at,
            actor=r.actor,
            credential=r.credential,
            address=r.address,
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            details=r.details or {},
        )
        for r in rows
    ]
