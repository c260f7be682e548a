"""`patchbay org` (create, list, update an org's tier and caps) and `patchbay usage` (what an org's
segments consumed and cost, by where the cost lands)."""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy.ext.asyncio import AsyncSession

from billing import report
from billing.money import format_usd
from foundation.db import utcnow
from foundation.tiers import Tier
from server import accounts
from server.cli_budgets import org_update
from server.cli_common import emit, json_option, load_settings, run_in_session


@click.group()
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


@click.command("usage")
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
