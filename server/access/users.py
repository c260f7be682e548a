"""People: invites, accounts with argon2id passwords, memberships and browser sessions.

An owner (or the operator) invites an email address into an org with a role; the link carries a
one-time secret. Accepting it creates the account (or, for an existing account, proves it with
the password) and signs the browser in. Password hashing runs on a worker thread: argon2 is
deliberately slow and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.db import utcnow
from foundation.errors import NotFoundError, RequestError
from foundation.orgs import Org
from server.access.caller import PREFIX_LENGTH, Caller, Grant, issue_secret, matches
from server.access.roles import Role
from server.access.tables import Invite, Membership, User, UserSession

INVITE_PREFIX = "pbi-"
SESSION_PREFIX = "pbs-"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}$")
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs what a wrong password costs."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class SignInError(RequestError):
    """Wrong email or password, or a dead invite: one wording for every cause (a 401)."""

    code = "unauthorized"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise RequestError(f"{email[:80]!r} is not an email address", param="email")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise RequestError(f"a password is at least {MIN_PASSWORD} characters", param="password")
    if len(password) > MAX_PASSWORD:
        raise RequestError(f"a password is at most {MAX_PASSWORD} characters", param="password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(stored: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    id: str
    org_id: str
    email: str
    role: str
    expires_at: datetime
    token: str
    """The one-time secret the link carries; shown once."""


async def invite(
    session: AsyncSession, org: Org, email: str, role: Role, *, ttl: timedelta, created_by: str
) -> IssuedInvite:
    address = normalise_email(email)
    secret = issue_secret(INVITE_PREFIX)
    row = Invite(
        org_id=org.id,
        email=address,
        role=role.value,
        prefix=secret.prefix,
        token_hash=secret.digest,
        created_by=created_by[:64],
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    await session.flush()
    session.add(
        AuditEvent(
            org_id=org.id,
            actor=created_by[:64],
            action="member.invite",
            target_type="invite",
            target_id=row.id,
            details={"email": address, "role": role.value},
        )
    )
    return IssuedInvite(
        id=row.id,
        org_id=org.id,
        email=address,
        role=role.value,
        expires_at=row.expires_at,
        token=secret.plaintext,
    )


async def _live_invite(session: AsyncSession, token: str) -> tuple[Invite, str]:
    found = (
        await session.execute(
            select(Invite, Org.name)
            .join(Org, Org.id == Invite.org_id)
            .where(Invite.prefix == token[:PREFIX_LENGTH])
        )
    ).first()
    if found is None or not token.startswith(INVITE_PREFIX):
        raise SignInError("this invite link is not valid; ask for a new one")
    row, org_name = found
    if not matches(row.token_hash, token) or row.accepted_at is not None or row.expires_at <= utcnow():
        raise SignInError("this invite link is not valid (used or expired); ask for a new one")
    return row, org_name


async def preview_invite(session: AsyncSession, token: str) -> dict[str, str]:
    row, org_name = await _live_invite(session, token)
    exists = await session.scalar(select(User.id).where(User.email == row.email)) is not None
    return {"email": row.email, "org": org_name, "role": row.role, "account": "existing" if exists else "new"}


async def accept_invite(session: AsyncSession, token: str, password: str) -> User:
    """Join the invite's org: create the account, or check the existing account's password."""
    row, _ = await _live_invite(session, token)
    user = await session.scalar(select(User).where(User.email == row.email))
    if user is None:
        check_password(password)
        user = User(email=row.email, password_hash=await hash_password(password))
        session.add(user)
        await session.flush()
    elif not await verify_password(user.password_hash, password):
        raise SignInError("wrong password for the existing account of this email")
    member = await session.get(Membership, (user.id, row.org_id))
    if member is None:
        session.add(Membership(user_id=user.id, org_id=row.org_id, role=row.role))
    else:
        member.role = row.role
    row.accepted_at = utcnow()
    session.add(
        AuditEvent(
            org_id=row.org_id,
            actor=user.email[:64],
            action="member.join",
            target_type="user",
            target_id=user.id,
            details={"role": row.role, "invite": row.id},
        )
    )
    return user


async def sign_in(session: AsyncSession, email: str, password: str) -> User:
    try:
        address = normalise_email(email)
    except RequestError:
        address = ""
    user = await session.scalar(select(User).where(User.email == address)) if address else None
    ok = await verify_password(
        user.password_hash if user else await asyncio.to_thread(_dummy_hash), password[:MAX_PASSWORD]
    )
    if user is None or not ok:
        raise SignInError("wrong email or password")
    return user


@dataclass(frozen=True, slots=True)
class OpenedSession:
    cookie: str
    csrf_token: str
    expires_at: datetime


async def open_session(
    session: AsyncSession, user: User, *, ttl: timedelta, address: str | None
) -> OpenedSession:
    # Sessions that ran out stay harmless, but need not stay: sweep this person's on each sign-in.
    await session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= utcnow())
    )
    secret = issue_secret(SESSION_PREFIX)
    row = UserSession(
        user_id=user.id,
        prefix=secret.prefix,
        token_hash=secret.digest,
        csrf_token=secrets.token_urlsafe(32),
        address=address,
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    return OpenedSession(cookie=secret.plaintext, csrf_token=row.csrf_token, expires_at=row.expires_at)


async def authenticate_session(session: AsyncSession, cookie: str, address: str | None) -> Caller | None:
    if not cookie.startswith(SESSION_PREFIX):
        return None
    found = (
        await session.execute(
            select(UserSession, User.email)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.prefix == cookie[:PREFIX_LENGTH])
        )
    ).first()
    if found is None:
        return None
    row, email = found
    if not matches(row.token_hash, cookie) or row.expires_at <= utcnow():
        return None
    members = await session.execute(
        select(Membership.org_id, Membership.role, Org.name)
        .join(Org, Org.id == Membership.org_id)
        .where(Membership.user_id == row.user_id)
    )
    grants = {org_id: Grant(org_id=org_id, org_name=name, role=Role(role)) for org_id, role, name in members}
    return Caller(
        kind="user",
        credential=row.user_id,
        label=email,
        address=address,
        grants=grants,
        session_id=row.id,
        csrf_token=row.csrf_token,
    )


async def close_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.id == session_id))


async def close_all_sessions(session: AsyncSession, user_id: str) -> int:
    result = await session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    user_id: str
    email: str
    role: str
    joined_at: datetime


async def list_members(session: AsyncSession, org: Org) -> list[MemberInfo]:
    rows = await session.execute(
        select(Membership, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org.id)
        .order_by(User.email)
    )
    return [
        MemberInfo(user_id=m.user_id, email=email, role=m.role, joined_at=m.created_at) for m, email in rows
    ]


async def remove_member(session: AsyncSession, org: Org, user_id: str, *, actor: str) -> None:
    member = await session.get(Membership, (user_id, org.id))
    if member is None:
        raise NotFoundError(f"org {org.name!r} has no member {user_id!r}")
    await session.delete(member)
    session.add(
        AuditEvent(
            org_id=org.id, actor=actor[:64], action="member.remove", target_type="user", target_id=user_id
        )
    )
