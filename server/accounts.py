"""Orgs and server-issued API keys: the operations both the admin API and the CLI call."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.db import new_id, utcnow
from foundation.errors import ConflictError, NotFoundError, RequestError
from foundation.orgs import Org, Tier
from routing.tables import Agent, OrgAISettings
from server.tables import ApiKey

API_KEY_PREFIX = "pb-"
_PREFIX_LEN = 14
ORG_ID_PREFIX = "org_"
"""What `new_id("org")` ids start with."""
_ORG_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True, slots=True)
class OrgInfo:
    id: str
    name: str
    tier: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    org_id: str
    agent: str | None
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    info: ApiKeyInfo
    key: str
    """The plaintext key, returned exactly once at creation."""


def _org_info(org: Org) -> OrgInfo:
    return OrgInfo(id=org.id, name=org.name, tier=org.tier, created_at=org.created_at)


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:_PREFIX_LEN]


def validate_org_id(org_id: str) -> str:
    if not _ORG_ID_RE.match(org_id):
        raise RequestError(f"org id {org_id!r} must be 1-32 characters of letters, digits, '_', '.', '-'")
    return org_id


async def create_org(
    session: AsyncSession, name: str, tier: Tier = Tier.FREE, *, org_id: str | None = None, actor: str = "admin"
) -> OrgInfo:
    name = name.strip()
    if not name:
        raise RequestError("org name must not be empty", param="name")
    # Orgs are found by id or by name (`get_org`, id first): a name that is, or could become,
    # an id would make one org unreachable by its name, or shadow another.
    if name.lower().startswith(ORG_ID_PREFIX):
        raise RequestError(f"org names may not start with {ORG_ID_PREFIX!r}: that is how org ids look", param="name")
    if await session.get(Org, name) is not None:
        raise ConflictError(f"{name!r} is another org's id; choose another name", param="name")
    if org_id is not None and await session.scalar(select(Org.id).where(Org.name == org_id)) is not None:
        raise ConflictError(f"{org_id!r} is another org's name; choose another id", param="org_id")
    if await session.scalar(select(Org.id).where(Org.name == name)) is not None:
        raise ConflictError(f"an org named {name!r} already exists")
    org = Org(id=validate_org_id(org_id) if org_id is not None else new_id("org"), name=name, tier=tier.value)
    session.add(org)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"org {org_id or name!r} already exists") from exc
    session.add(OrgAISettings(org_id=org.id, routing={}))
    session.add(AuditEvent(org_id=org.id, actor=actor, action="org.create", target_type="org", target_id=org.id))
    return _org_info(org)


async def get_org(session: AsyncSession, ref: str) -> Org:
    """Find an org by id or by name."""
    org = await session.get(Org, ref)
    if org is None:
        org = await session.scalar(select(Org).where(Org.name == ref))
    if org is None:
        raise NotFoundError(f"no org {ref!r}")
    return org


async def list_orgs(session: AsyncSession) -> list[OrgInfo]:
    rows = await session.scalars(select(Org).order_by(Org.created_at, Org.id))
    return [_org_info(o) for o in rows]


def _key_info(key: ApiKey, agent_name: str | None) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        org_id=key.org_id,
        agent=agent_name,
        name=key.name,
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


async def create_api_key(
    session: AsyncSession, org_ref: str, *, agent: str | None = None, name: str | None = None, actor: str = "admin"
) -> IssuedKey:
    org = await get_org(session, org_ref)
    agent_id = None
    if agent is not None:
        agent_id = await session.scalar(select(Agent.id).where(Agent.org_id == org.id, Agent.name == agent))
        if agent_id is None:
            raise NotFoundError(f"org {org.name!r} has no agent {agent!r}")
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(org_id=org.id, agent_id=agent_id, name=name, prefix=key_prefix(plaintext), key_hash=hash_api_key(plaintext))
    session.add(row)
    await session.flush()
    session.add(
        AuditEvent(
            org_id=org.id,
            actor=actor,
            action="apikey.create",
            target_type="api_key",
            target_id=row.id,
            details={"prefix": row.prefix, "agent": agent},
        )
    )
    return IssuedKey(info=_key_info(row, agent), key=plaintext)


async def list_api_keys(session: AsyncSession, org_ref: str) -> list[ApiKeyInfo]:
    org = await get_org(session, org_ref)
    rows = await session.execute(
        select(ApiKey, Agent.name)
        .outerjoin(Agent, Agent.id == ApiKey.agent_id)
        .where(ApiKey.org_id == org.id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    return [_key_info(k, agent_name) for k, agent_name in rows]


async def revoke_api_key(session: AsyncSession, org_ref: str, key_id: str, *, actor: str = "admin") -> ApiKeyInfo:
    org = await get_org(session, org_ref)
    row = await session.get(ApiKey, key_id)
    if row is None or row.org_id != org.id:
        raise NotFoundError(f"org {org.name!r} has no API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(AuditEvent(org_id=org.id, actor=actor, action="apikey.revoke", target_type="api_key", target_id=row.id))
    agent_name = await session.scalar(select(Agent.name).where(Agent.id == row.agent_id)) if row.agent_id else None
    return _key_info(row, agent_name)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid server API key speaks for."""

    key_id: str
    org_id: str
    agent_id: str | None


async def authenticate_api_key(session: AsyncSession, presented: str) -> Principal | None:
    if not presented.startswith(API_KEY_PREFIX):
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == key_prefix(presented)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_api_key(presented)):
        return None
    return Principal(key_id=row.id, org_id=row.org_id, agent_id=row.agent_id)
