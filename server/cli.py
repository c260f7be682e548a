"""The `patchbay` command line.

Exit codes: 0 success; 1 the operation failed (not found, conflict, bad value); 2 usage error;
3 the environment is not ready (database unreachable or not migrated, missing master key);
4 partial success (an import with rejected lines). Every command takes `--json`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from billing import report
from billing.money import format_usd
from foundation.db import utcnow
from foundation.orgs import Tier
from server import accounts
from server.cli_access import audit, user_group
from server.cli_activity import requests
from server.cli_admin import admin_group
from server.cli_agents import agent
from server.cli_apikeys import apikey_group
from server.cli_billing import credits_group, ledger
from server.cli_budgets import apikey_update, org_update
from server.cli_common import (
    EXIT_NOT_READY,
    emit,
    fail,
    json_option,
    load_settings,
    run_in_session,
)
from server.cli_config import config_group
from server.cli_conformance import conformance_group
from server.cli_connections import connection
from server.cli_db import db_downgrade
from server.cli_explain import agent_explain
from server.cli_flags import flags_group
from server.cli_import import import_group
from server.cli_migrate import migrate
from server.cli_payments import billing_group
from server.cli_vault import vault_group
from server.db import Database, head_revision
from server.logs import configure_logging
from server.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="patchbay")
def cli() -> None:
    """Patchbay: bring-your-own-key AI server for text, vision and real-time voice agents."""


@cli.command()
@click.option("--host", help="Bind address (default PATCHBAY_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default PATCHBAY_PORT or 8080).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port (default PATCHBAY_WORKERS or 1; one per core for voice load).",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Apply migrations and run the server in the foreground."""
    from server import serve as serving
    from server.replicas import replica_problems
    from server.services import Services, StartupError

    settings = load_settings(host=host, port=port, workers=workers)
    configure_logging(settings.log_level)
    problems = replica_problems(settings)
    if problems:
        fail("refusing to start as one of several replicas:\n- " + "\n- ".join(problems), EXIT_NOT_READY)

    async def preflight() -> None:
        # Fail here, with a clear message and exit code, rather than inside the ASGI lifespan
        # (of every worker). A master key file generated here is the one the workers read.
        services = Services.build(settings)
        try:
            await services.db.upgrade()
            await services.start()
        finally:
            await services.aclose()

    try:
        asyncio.run(preflight())
    except StartupError as exc:
        fail(f"refusing to start: {exc}", EXIT_NOT_READY)
    except OSError as exc:
        fail(f"refusing to start: cannot reach the database ({type(exc).__name__})", EXIT_NOT_READY)
    serving.run(settings)


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target migration revision.")
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = load_settings()

    async def run() -> tuple[str | None, str | None]:
        database = Database(settings.resolved_database_url)
        try:
            before = await database.current_revision()
            await database.upgrade(revision)
            return before, await database.current_revision()
        finally:
            await database.dispose()

    try:
        before, after = asyncio.run(run())
    except OSError as exc:
        fail(
            f"cannot reach the database: {exc.__class__.__name__}",
            EXIT_NOT_READY,
            as_json=as_json,
            kind="not_ready",
        )
    text = (
        f"database already at {after}"
        if before == after
        else f"migrated {before or 'empty database'} -> {after}"
    )
    emit(as_json, {"from": before, "to": after, "changed": before != after}, text)


@db.command("current")
@json_option
def db_current(as_json: bool) -> None:
    """Show the database's migration revision and the newest one."""
    settings = load_settings()

    async def run() -> str | None:
        database = Database(settings.resolved_database_url)
        try:
            return await database.current_revision()
        finally:
            await database.dispose()

    current, head = asyncio.run(run()), head_revision()
    emit(
        as_json,
        {"current": current, "head": head, "up_to_date": current == head},
        f"current {current}, head {head}",
    )


@cli.group()
def org() -> None:
    """Organisations."""


@org.command("create")
@click.argument("name")
@click.option(
    "--tier",
    type=click.Choice([t.value for t in Tier]),
    help="Default: PATCHBAY_DEFAULT_TIER (enterprise unless set).",
)
@json_option
def org_create(name: str, tier: str | None, as_json: bool) -> None:
    """Create an org and print its id."""
    chosen = Tier(tier) if tier is not None else load_settings().default_tier
    info = run_in_session(lambda s: accounts.create_org(s, name, chosen, actor="cli"), as_json=as_json)
    emit(as_json, info, info.id)


@org.command("list")
@json_option
def org_list(as_json: bool) -> None:
    """List orgs."""
    orgs = run_in_session(accounts.list_orgs, as_json=as_json)
    emit(as_json, orgs, "\n".join(f"{o.id}\t{o.tier}\t{o.name}" for o in orgs) or "no orgs")


@cli.command("usage")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option(
    "--since", default="24h", show_default=True, help="ISO 8601 time, or a span back from now (90m, 24h, 7d)."
)
@click.option("--until", help="ISO 8601 time or span (default now).")
@click.option(
    "--by",
    "group_by",
    default="billing_source,segment",
    show_default=True,
    help=f"Comma-separated groups, from: {', '.join(report.GROUPS)}; empty for one total.",
)
@json_option
def usage(org_ref: str, since: str, until: str | None, group_by: str, as_json: bool) -> None:
    """What an org's segments consumed (tokens, audio seconds, characters) and cost, by where the cost lands."""
    groups = report.parse_groups(group_by)

    async def summarize(session: AsyncSession) -> tuple[str, datetime, datetime, list[report.UsageTotals]]:
        start, end = report.window(since, until, now=utcnow())
        org_id = (await accounts.get_org(session, org_ref)).id
        return (
            org_id,
            start,
            end,
            await report.summarize(session, org_id, since=start, until=end, group_by=groups),
        )

    org_id, start, end, entries = run_in_session(summarize, as_json=as_json)
    payload = {
        "org_id": org_id,
        "since": start,
        "until": end,
        "group_by": groups,
        "entries": [
            {"group": e.group, "totals": e.totals, "cost_usd": format_usd(int(e.totals["cost_micro_usd"]))}
            for e in entries
        ],
    }
    emit(as_json, payload, usage_table(groups, entries, start, end))


def usage_table(groups: list[str], entries: list[report.UsageTotals], start: datetime, end: datetime) -> str:
    window = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if not entries:
        return f"no usage from {window}"
    shown = ("segments", "input_tokens", "output_tokens", "audio_seconds", "characters")
    rows = [[*groups, *shown, "cost_usd"]] + [
        [
            *(e.group[g] or "-" for g in groups),
            *(str(e.totals[m]) for m in shown),
            format_usd(int(e.totals["cost_micro_usd"])),
        ]
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([f"usage from {window}", *lines])


org.add_command(org_update)
apikey_group.add_command(apikey_update)
cli.add_command(apikey_group, name="apikey")
cli.add_command(migrate)
cli.add_command(import_group, name="import")
cli.add_command(connection)
agent.add_command(agent_explain)
cli.add_command(agent)
cli.add_command(vault_group, name="vault")
cli.add_command(admin_group, name="admin")
cli.add_command(user_group, name="user")
cli.add_command(audit, name="audit")
cli.add_command(credits_group, name="credits")
cli.add_command(billing_group, name="billing")
cli.add_command(ledger, name="ledger")
cli.add_command(requests)
cli.add_command(conformance_group, name="conformance")
cli.add_command(config_group, name="config")
db.add_command(db_downgrade)
cli.add_command(flags_group, name="flags")


def configure_cli_logging() -> None:
    """Log like the server: JSON lines on stderr, so stdout stays clean for `--json` output.

    The level is PATCHBAY_LOG_LEVEL. With settings that do not validate this falls back to
    INFO instead of failing, so `--help` still works and the command reports the bad setting.
    """
    try:
        level: str = Settings().log_level
    except ValidationError:
        level = "INFO"
    configure_logging(level)


def main() -> None:
    """The console script. Logging is configured here, once for every command, and not in the
    click group, so callers that invoke `cli` in process (tests) keep their own logging."""
    configure_cli_logging()
    cli(prog_name="patchbay")
