"""Orgs and server-issued API keys: the operations both the admin API and the CLI call."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Table, bindparam, lambda_stmt, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from billing.money import format_usd
from billing.spend import month_of
from billing.spend_store import key_limits, set_cap, spent_in
from foundation.audit import AuditEvent
from foundation.db import new_id, utcnow
from foundation.errors import ConflictError, NotFoundError, RequestError
from foundation.orgs import Org
from foundation.tiers import Tier
from routing.org_rows import OrgRowsReader, with_org_rows
from routing.tables import Agent, OrgAISettings
from server.access.expiry import parse_expiry
from server.key_scope import check_models, check_name, key_status
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
    name: str
    """The key's name; its prefix for keys made before names were required."""
    prefix: str
    models: list[str] | None
    """The models it may ask for; None: any."""
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    """Written behind the requests: up to a minute late."""
    revoked_at: datetime | None
    status: str
    """`active`, `expired` or `revoked`, as of when it was read."""
    spend_limit: str | None = None
    """Its monthly spend limit (calendar month, UTC) in exact USD; None: only the org's budget applies."""
    spend_limit_micro_usd: int | None = None
    spent_this_month: str = "0.00"
    """What requests with it were charged this month (UTC), settled charges, in exact USD."""
    spent_this_month_micro_usd: int = 0


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
    session: AsyncSession,
    name: str,
    tier: Tier = Tier.ENTERPRISE,
    *,
    org_id: str | None = None,
    actor: str = "admin",
) -> OrgInfo:
    """A new org. The surfaces pass `PATCHBAY_DEFAULT_TIER` when no tier is given; its default,
    `enterprise`, is the default here too."""
    name = name.strip()
    if not name:
        raise RequestError("org name must not be empty", param="name")
    # Orgs are found by id or by name (`get_org`, id first): a name that is, or could become,
    # an id would make one org unreachable by its name, or shadow another.
    if name.lower().startswith(ORG_ID_PREFIX):
        raise RequestError(
            f"org names may not start with {ORG_ID_PREFIX!r}: that is how org ids look", param="name"
        )
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
    session.add(
        AuditEvent(org_id=org.id, actor=actor, action="org.create", target_type="org", target_id=org.id)
    )
    return _org_info(org)


async def get_org(session: AsyncSession, ref: str) -> Org:
    """Find an org by id or by name."""
    org = await session.get(Org, ref)
    if org is None:
        org = await session.scalar(select(Org).where(Org.name == ref))
    if org is None:
        raise NotFoundError(f"no org {ref!r}; give an org's id or name (`patchbay org list` shows them)")
    return org


async def list_orgs(session: AsyncSession) -> list[OrgInfo]:
    rows = await session.scalars(select(Org).order_by(Org.created_at, Org.id))
    return [_org_info(o) for o in rows]


def _key_info(
    key: ApiKey, agent_name: str | None, now: datetime, *, limit: int | None = None, spent: int = 0
) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        org_id=key.org_id,
        agent=agent_name,
        name=key.name or key.prefix,
        prefix=key.prefix,
        models=list(key.models) if key.models else None,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
        status=key_status(key.revoked_at, key.expires_at, now).value,
        spend_limit=format_usd(limit) if limit is not None else None,
        spend_limit_micro_usd=limit,
        spent_this_month=format_usd(spent),
        spent_this_month_micro_usd=spent,
    )


async def _spend_of_keys(
    session: AsyncSession, org_id: str, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """The org's keys' spend limits and this month's spend (billing's `spend_caps`, `spend_totals`)."""
    _, spent = await spent_in(session, org_id, month_of(now))
    return await key_limits(session, org_id), spent


async def create_api_key(
    session: AsyncSession,
    org_ref: str,
    *,
    name: str | None,
    agent: str | None = None,
    models: Sequence[str] | None = None,
    expires: str | None = None,
    spend_limit: int | None = None,
    actor: str = "admin",
    now: datetime | None = None,
) -> IssuedKey:
    """A new key with its scope. `expires` is an ISO 8601 time or a span from now (`30d`);
    `spend_limit` its monthly spend limit in micro-USD (None: none)."""
    now = now or utcnow()
    name = check_name(name)
    allowed = check_models(models)
    expires_at = parse_expiry(expires, now=now)
    org = await get_org(session, org_ref)
    agent_id = None
    if agent is not None:
        agent_id = await session.scalar(select(Agent.id).where(Agent.org_id == org.id, Agent.name == agent))
        if agent_id is None:
            raise NotFoundError(f"org {org.name!r} has no agent {agent!r}")
    live = select(ApiKey.id).where(ApiKey.org_id == org.id, ApiKey.name == name, ApiKey.revoked_at.is_(None))
    taken = f"org {org.name!r} already has a key named {name!r}; choose another name"
    if await session.scalar(live) is not None:
        raise ConflictError(taken, param="name")
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        org_id=org.id,
        agent_id=agent_id,
        name=name,
        prefix=key_prefix(plaintext),
        key_hash=hash_api_key(plaintext),
        models=allowed,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # another process took the name since the check above
        raise ConflictError(taken, param="name") from exc
    if spend_limit is not None:
        await set_cap(session, org.id, row.id, spend_limit, now)
    expiry = expires_at.isoformat() if expires_at else None
    details: dict[str, object] = {
        "prefix": row.prefix,
        "name": name,
        "agent": agent,
        "models": allowed,
        "expires_at": expiry,
    }
    if spend_limit is not None:
        details["spend_limit_usd"] = format_usd(spend_limit)
    session.add(_key_event(org.id, actor, "apikey.create", row.id, details))
    return IssuedKey(info=_key_info(row, agent, now, limit=spend_limit), key=plaintext)


def _key_event(
    org_id: str, actor: str, action: str, key_id: str, details: Mapping[str, object]
) -> AuditEvent:
    """An audit row for a key: its prefix, name and scope, never the key."""
    return AuditEvent(
        org_id=org_id,
        actor=actor,
        action=action,
        target_type="api_key",
        target_id=key_id,
        details=dict(details),
    )


async def list_api_keys(
    session: AsyncSession, org_ref: str, *, now: datetime | None = None, month_at: datetime | None = None
) -> list[ApiKeyInfo]:
    """The org's keys; `spent_this_month` is for the month of `month_at` (default `now`)."""
    org = await get_org(session, org_ref)
    rows = await session.execute(
        select(ApiKey, Agent.name)
        .outerjoin(Agent, Agent.id == ApiKey.agent_id)
        .where(ApiKey.org_id == org.id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    now = now or utcnow()
    limits, spent = await _spend_of_keys(session, org.id, month_at or now)
    return [
        _key_info(k, agent_name, now, limit=limits.get(k.id), spent=spent.get(k.id, 0))
        for k, agent_name in rows
    ]


async def _org_key(session: AsyncSession, org_ref: str, key_id: str) -> tuple[Org, ApiKey]:
    org = await get_org(session, org_ref)
    row = await session.get(ApiKey, key_id)
    if row is None or row.org_id != org.id:
        raise NotFoundError(f"org {org.name!r} has no API key {key_id!r}")
    return org, row


async def _agent_name(session: AsyncSession, row: ApiKey) -> str | None:
    if row.agent_id is None:
        return None
    return await session.scalar(select(Agent.name).where(Agent.id == row.agent_id))


async def get_api_key(
    session: AsyncSession,
    org_ref: str,
    key_id: str,
    *,
    now: datetime | None = None,
    month_at: datetime | None = None,
) -> ApiKeyInfo:
    _, row = await _org_key(session, org_ref, key_id)
    now = now or utcnow()
    limits, spent = await _spend_of_keys(session, row.org_id, month_at or now)
    return _key_info(
        row, await _agent_name(session, row), now, limit=limits.get(row.id), spent=spent.get(row.id, 0)
    )


async def revoke_api_key(
    session: AsyncSession, org_ref: str, key_id: str, *, actor: str = "admin"
) -> ApiKeyInfo:
    org, row = await _org_key(session, org_ref, key_id)
    now = utcnow()
    if row.revoked_at is None:
        row.revoked_at = now
        details = {"prefix": row.prefix, "name": row.name or row.prefix}
        session.add(_key_event(org.id, actor, "apikey.revoke", row.id, details))
    return _key_info(row, await _agent_name(session, row), now)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid server API key speaks for, and the key's scope: all a request's checks need,
    so a surface never reads the database to decide whether the key may do something."""

    key_id: str
    org_id: str
    agent_id: str | None
    name: str | None = None
    """The key's name (its prefix, for keys made before names were required)."""
    allowed_models: frozenset[str] | None = None
    """Lower-cased model list (`server.key_scope.model_allowed`); None: any model."""
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class KeyRow(NamedTuple):
    """The columns of a key its first use reads (Core: no ORM object is loaded)."""

    id: str
    org_id: str
    agent_id: str | None
    name: str | None
    prefix: str
    key_hash: str
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None


def principal_of(row: ApiKey | KeyRow) -> Principal:
    return Principal(
        key_id=row.id,
        org_id=row.org_id,
        agent_id=row.agent_id,
        name=row.name or row.prefix,
        allowed_models=frozenset(m.lower() for m in row.models) if row.models else None,
        expires_at=row.expires_at,
    )


async def authenticate_api_key(session: AsyncSession, presented: str) -> Principal | None:
    """The principal of a live (not revoked) key, expired or not: callers check the expiry."""
    return (await authenticate_api_keys(session, [presented])).get(presented)


_KEYS = ApiKey.__table__
assert isinstance(_KEYS, Table)
_KEY_COLUMNS = [_KEYS.c[name] for name in KeyRow._fields]
_PREFIXES = _KEYS.c.prefix.in_(bindparam("prefixes", expanding=True))
_BY_PREFIX = select(*_KEY_COLUMNS).where(_PREFIXES)
"""Built once: a key's first use waits on this read (only the prefixes change)."""
_WITH_ORGS_SELECT = with_org_rows(_KEYS, _KEYS.c.org_id, *_KEY_COLUMNS).where(_PREFIXES)
_WITH_ORGS = lambda_stmt(lambda: _WITH_ORGS_SELECT)
"""The same, each key's row followed by its org's (one row per connection of the org); a lambda
statement over a module constant, as `routing.org_rows` runs its org statement (no cache-key
walk of the whole statement at each execution)."""


async def recently_used_keys(session: AsyncSession, limit: int) -> list[tuple[str, Principal]]:
    """The live keys used most recently (by `last_used_at`, newest first), at most `limit`, as
    (digest, principal): what a starting process loads ahead of their requests."""
    rows = await (await session.connection()).execute(
        select(*_KEY_COLUMNS)
        .where(_KEYS.c.revoked_at.is_(None), _KEYS.c.last_used_at.is_not(None))
        .order_by(_KEYS.c.last_used_at.desc())
        .limit(limit)
    )
    return [(row.key_hash, principal_of(row)) for row in map(KeyRow._make, rows)]


async def authenticate_api_keys(session: AsyncSession, presented: Sequence[str]) -> dict[str, Principal]:
    """`authenticate_api_key` for many keys in one query (keys used for the first time together)."""
    ours = _ours(presented)
    if not ours:
        return {}
    # On the session's connection: a Core statement needs none of the ORM's execution.
    rows = await (await session.connection()).execute(_BY_PREFIX, _prefixes(ours))
    return _matched(ours, map(KeyRow._make, rows))


async def authenticate_api_keys_with_orgs(
    conn: AsyncConnection, presented: Sequence[str]
) -> tuple[dict[str, Principal], OrgRowsReader]:
    """`authenticate_api_keys`, and the rows of the keys' orgs read by the same statement: an
    org's first request makes one statement for its key and its org (`Registry.preload_rows`)."""
    orgs = OrgRowsReader(len(KeyRow._fields))
    ours = _ours(presented)
    if not ours:
        return {}, orgs
    keys: dict[str, KeyRow] = {}
    for row in await conn.execute(_WITH_ORGS, _prefixes(ours)):
        orgs.add(row)
        if row[0] not in keys:
            keys[row[0]] = KeyRow._make(row[: len(KeyRow._fields)])
    return _matched(ours, keys.values()), orgs


def _ours(presented: Sequence[str]) -> list[str]:
    return [p for p in presented if p.startswith(API_KEY_PREFIX)]


def _prefixes(ours: list[str]) -> dict[str, list[str]]:
    return {"prefixes": list({key_prefix(p) for p in ours})}


def _matched(ours: list[str], rows: Iterable[KeyRow]) -> dict[str, Principal]:
    """The principals of the keys presented that match a live row (by prefix, then hash)."""
    by_prefix = {row.prefix: row for row in rows}
    out: dict[str, Principal] = {}
    for key in ours:
        row = by_prefix.get(key_prefix(key))
        if row is None or row.revoked_at is not None:
            continue
        if hmac.compare_digest(row.key_hash, hash_api_key(key)):
            out[key] = principal_of(row)
    return out
