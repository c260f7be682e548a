"""`patchbay admin token create|list|revoke`, `patchbay user invite|list|remove` and `patchbay audit`.

Exit codes follow `server.cli`. Tokens and invite links are printed once, to stdout only.
"""

from __future__ import annotations

from datetime import timedelta

import click
from sqlalchemy.ext.asyncio import AsyncSession

from billing import report
from foundation.audit import recent_events
from foundation.db import utcnow
from server import accounts
from server.access import tokens, users
from server.access.expiry import parse_expiry
from server.access.roles import Role
from server.cli_common import emit, json_option, jsonable, load_settings, run_in_session

ROLES = click.Choice([r.value for r in Role])
ORG = click.option("--org", "org_ref", required=True, help="Org id or name.")


def add_token_commands(token_group: click.Group) -> None:
    """Attach create/list/revoke to `patchbay admin token` (which alone prints the operator token)."""

    @token_group.command("create")
    @ORG
    @click.option("--role", required=True, type=ROLES, help="What the token may do in the org.")
    @click.option("--name", help="A label people will recognise in the audit log.")
    @click.option(
        "--expires", metavar="SPAN|TIME", help="30d, 12h, 90m or an ISO 8601 time (default: never)."
    )
    @json_option
    def create(org_ref: str, role: str, name: str | None, expires: str | None, as_json: bool) -> None:
        """Create an org-scoped admin token and print it once (only its hash is stored)."""

        async def run(s: AsyncSession) -> tokens.IssuedToken:
            org = await accounts.get_org(s, org_ref)
            expires_at = parse_expiry(expires, now=utcnow())
            return await tokens.create_token(
                s, org, Role(role), name=name, expires_at=expires_at, created_by="cli"
            )

        issued = run_in_session(run, as_json=as_json)
        emit(as_json, {**jsonable(issued.info), "token": issued.token}, issued.token)

    @token_group.command("list")
    @ORG
    @json_option
    def list_(org_ref: str, as_json: bool) -> None:
        """List an org's admin tokens (prefixes only)."""

        async def run(s: AsyncSession) -> list[tokens.TokenInfo]:
            return await tokens.list_tokens(s, await accounts.get_org(s, org_ref))

        found = run_in_session(run, as_json=as_json)
        lines = [
            f"{t.id}\t{t.prefix}…\t{t.role}\t{t.status}\t{t.name or '-'}\texpires {t.expires_at:%Y-%m-%d %H:%M}"
            if t.expires_at
            else f"{t.id}\t{t.prefix}…\t{t.role}\t{t.status}\t{t.name or '-'}\tno expiry"
            for t in found
        ]
        emit(as_json, found, "\n".join(lines) or "no admin tokens")

    @token_group.command("revoke")
    @ORG
    @click.argument("token_id")
    @json_option
    def revoke(org_ref: str, token_id: str, as_json: bool) -> None:
        """Revoke an org admin token; every replica refuses it from the next request."""

        async def run(s: AsyncSession) -> tokens.TokenInfo:
            return await tokens.revoke_token(s, await accounts.get_org(s, org_ref), token_id, actor="cli")

        info = run_in_session(run, as_json=as_json)
        emit(as_json, info, f"revoked {info.id}")


@click.group("user")
def user_group() -> None:
    """People who sign in to the web UI: invites and memberships."""


@user_group.command("invite")
@ORG
@click.option("--email", required=True, help="Who is invited.")
@click.option("--role", required=True, type=ROLES, help="Their role in the org.")
@click.option(
    "--base-url", metavar="URL", help="Where browsers reach this server (default PATCHBAY_PUBLIC_URL)."
)
@json_option
def invite(org_ref: str, email: str, role: str, base_url: str | None, as_json: bool) -> None:
    """Invite someone into an org and print the one-time link to send them."""
    from server.admin.access import invite_link

    settings = load_settings()

    async def run(s: AsyncSession) -> users.IssuedInvite:
        org = await accounts.get_org(s, org_ref)
        return await users.invite(
            s, org, email, Role(role), ttl=timedelta(hours=settings.invite_hours), created_by="cli"
        )

    issued = run_in_session(run, as_json=as_json)
    origin = base_url or settings.public_url or f"http://{settings.host}:{settings.port}"
    link = invite_link(origin, issued.token)
    payload = {
        "id": issued.id,
        "org_id": issued.org_id,
        "email": issued.email,
        "role": issued.role,
        "expires_at": issued.expires_at,
        "link": link,
    }
    emit(as_json, payload, link)


@user_group.command("list")
@ORG
@json_option
def members(org_ref: str, as_json: bool) -> None:
    """List the people in an org and their roles."""

    async def run(s: AsyncSession) -> list[users.MemberInfo]:
        return await users.list_members(s, await accounts.get_org(s, org_ref))

    found = run_in_session(run, as_json=as_json)
    emit(as_json, found, "\n".join(f"{m.user_id}\t{m.role}\t{m.email}" for m in found) or "no members")


@user_group.command("remove")
@ORG
@click.argument("user_id")
@json_option
def remove(org_ref: str, user_id: str, as_json: bool) -> None:
    """Take someone out of an org (their account and other orgs stay)."""

    async def run(s: AsyncSession) -> None:
        await users.remove_member(s, await accounts.get_org(s, org_ref), user_id, actor="cli")

    run_in_session(run, as_json=as_json)
    emit(as_json, {"removed": user_id}, f"removed {user_id}")


@click.command("audit")
@ORG
@click.option(
    "--since", default="7d", show_default=True, help="ISO 8601 time, or a span back from now (90m, 24h, 7d)."
)
@click.option("--action", help="Only actions starting with this (e.g. connection., apikey.create).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@json_option
def audit(org_ref: str, since: str, action: str | None, limit: int, as_json: bool) -> None:
    """An org's audit log, newest first: who did what, with which credential, from where."""

    async def run(s: AsyncSession) -> list[dict[str, object]]:
        start = report.parse_instant(since, now=utcnow(), param="since")
        org_id = (await accounts.get_org(s, org_ref)).id
        rows = await recent_events(s, org_id, since=start, limit=limit, action=action)
        return [
            {
                "id": r.id,
                "at": r.created_at,
                "actor": r.actor,
                "credential": r.credential,
                "address": r.address,
                "action": r.action,
                "target_type": r.target_type,
                "target_id": r.target_id,
                "details": r.details or {},
            }
            for r in rows
        ]

    events = run_in_session(run, as_json=as_json)
    lines = [
        f"{e['at']:%Y-%m-%d %H:%M:%S}  {e['actor']}  {e['action']}  {e['target_type']}:{e['target_id'] or '-'}  {e['address'] or ''}".rstrip()
        for e in events
    ]
    emit(as_json, events, "\n".join(lines) or f"no audit events since {since}")
