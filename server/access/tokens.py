"""Org-scoped admin tokens: created (printed once), listed, revoked, and checked on every use.

A token is looked up in the database on every admin request, so a revoked or expired token is
refused at once by every replica; the admin API is not a hot path. `last_used_at` is written at
most once a minute per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.db import utcnow
from foundation.errors import NotFoundError, RequestError
from foundation.orgs import Org
from server.access.caller import PREFIX_LENGTH, Caller, Grant, issue_secret, matches
from server.access.roles import Role
from server.access.tables import OrgAdminToken

TOKEN_PREFIX = "pbt-"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class TokenInfo:
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


@dataclass(frozen=True, slots=True)
class IssuedToken:
    info: TokenInfo
    token: str
    """The plaintext token, returned exactly once."""


def _status(row: OrgAdminToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _info(row: OrgAdminToken, now: datetime) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        org_id=row.org_id,
        role=row.role,
        name=row.name,
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        status=_status(row, now),
    )


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise RequestError(
            f"unknown role {value!r}; choose one of: {', '.join(r.value for r in Role)}", param="role"
        ) from None


async def create_token(
    session: AsyncSession,
    org: Org,
    role: Role,
    *,
    name: str | None,
    expires_at: datetime | None,
    created_by: str,
) -> IssuedToken:
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise RequestError("the expiry must lie in the future", param="expires")
    if name is not None and not (0 < len(name.strip()) <= 128):
        raise RequestError("a token name is 1-128 characters", param="name")
    secret = issue_secret(TOKEN_PREFIX)
    row = OrgAdminToken(
        org_id=org.id,
        role=role.value,
        name=name.strip() if name else None,
        prefix=secret.prefix,
        token_hash=secret.digest,
        created_by=created_by[:64],
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    session.add(
        AuditEvent(
            org_id=org.id,
            actor=created_by[:64],
            action="admin_token.create",
            target_type="admin_token",
            target_id=row.id,
            details={
                "role": role.value,
                "name": row.name,
                "prefix": row.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    )
    return IssuedToken(info=_info(row, now), token=secret.plaintext)


async def list_tokens(session: AsyncSession, org: Org) -> list[TokenInfo]:
    now = utcnow()
    rows = await session.scalars(
        select(OrgAdminToken)
        .where(OrgAdminToken.org_id == org.id)
        .order_by(OrgAdminToken.created_at, OrgAdminToken.id)
    )
    return [_info(r, now) for r in rows]


async def revoke_token(session: AsyncSession, org: Org, token_id: str, *, actor: str) -> TokenInfo:
    row = await session.get(OrgAdminToken, token_id)
    if row is None or row.org_id != org.id:
        raise NotFoundError(f"org {org.name!r} has no admin token {token_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(
            AuditEvent(
                org_id=org.id,
                actor=actor[:64],
                action="admin_token.revoke",
                target_type="admin_token",
                target_id=row.id,
            )
        )
    return _info(row, utcnow())


async def authenticate_token(session: AsyncSession, presented: str, address: str | None) -> Caller | None:
    """The caller an org admin token stands for, or None when it is unknown, revoked or expired."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    found = (
        await session.execute(
            select(OrgAdminToken, Org.name)
            .join(Org, Org.id == OrgAdminToken.org_id)
            .where(OrgAdminToken.prefix == presented[:PREFIX_LENGTH])
        )
    ).first()
    if found is None:
        return None
    row, org_name = found
    now = utcnow()
    if not matches(row.token_hash, presented) or _status(row, now) != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at >= _LAST_USED_GRANULARITY:
        row.last_used_at = now
    label = f"token:{row.name or row.id}"
    grant = Grant(org_id=row.org_id, org_name=org_name, role=Role(row.role))
    return Caller(kind="token", credential=row.id, label=label, address=address, grants={row.org_id: grant})
