"""`patchbay credits grant|balance` and `patchbay ledger`: an org's credits from the command line.

Amounts are typed in USD (up to six decimal places: one micro-dollar) and shown as exact
decimals beside their integer micro-USD, the ledger's unit (docs/billing.md). Exit codes follow
`server.cli`: a bad amount or an unknown org is 1, a usage mistake 2, an unready database 3.
"""

from __future__ import annotations

import click

from billing import report
from billing.ledger import Ledger
from billing.ledger_query import list_entries
from billing.ledger_types import Balance, Entry
from billing.money import AmountError, format_usd, parse_usd
from billing.statement import balance_json, entries_csv, entry_json
from foundation.db import new_id, utcnow
from foundation.errors import RequestError
from server import accounts
from server.cli_common import emit, fail, json_option, run_with_database
from server.db import Database

ORG = click.option("--org", "org_ref", required=True, help="Org id or name.")


async def _org_id(db: Database, org_ref: str) -> str:
    async with db.session() as session:
        return (await accounts.get_org(session, org_ref)).id


@click.group("credits")
def credits_group() -> None:
    """An org's credits: grant them, see the balance (the ledger is `patchbay ledger`)."""


@credits_group.command("grant")
@ORG
@click.option(
    "--amount", required=True, metavar="USD", help="USD to grant, e.g. 25 or 0.50 (at most 6 decimal places)."
)
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Retrying with the same key never grants twice. Not given: one is generated and printed first.",
)
@click.option("--reason", help="Why, kept in the ledger entry (no secrets).")
@json_option
def grant(org_ref: str, amount: str, idempotency_key: str | None, reason: str | None, as_json: bool) -> None:
    """Grant credits to an org (an append-only ledger entry) and print the new balance."""
    try:
        micro = parse_usd(amount)
        if micro == 0:
            raise AmountError("amount must be more than zero", param="amount")
    except RequestError as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)
    key = idempotency_key or new_id("grant")
    if idempotency_key is None:
        # Before the write, on stderr: whatever happens next, a retry can reuse it.
        click.echo(f"idempotency key: {key} (retry with --idempotency-key {key})", err=True)

    async def run(db: Database) -> tuple[Entry, Balance]:
        org_id = await _org_id(db, org_ref)
        ledger = Ledger(db.sessions)
        entry = await ledger.grant(org_id, micro, key, reason, actor="cli")
        return entry, await ledger.balance(org_id)

    entry, balance = run_with_database(run, as_json=as_json)
    verb = "already granted (same idempotency key)" if entry.replayed else "granted"
    text = (
        f"{verb}: {format_usd(entry.amount)} USD to {entry.org_id} ({entry.id})\n"
        f"balance {format_usd(balance.balance)} USD, available {format_usd(balance.available)} USD\n"
        f"idempotency key: {key}"
    )
    payload = {
        "entry": entry_json(entry),
        "idempotency_key": key,
        "replayed": entry.replayed,
        "balance": balance_json(entry.org_id, balance),
    }
    emit(as_json, payload, text)


@credits_group.command("balance")
@ORG
@json_option
def balance(org_ref: str, as_json: bool) -> None:
    """Show an org's balance, what open holds reserve, and what is available."""

    async def run(db: Database) -> tuple[str, Balance]:
        org_id = await _org_id(db, org_ref)
        return org_id, await Ledger(db.sessions).balance(org_id)

    org_id, found = run_with_database(run, as_json=as_json)
    text = (
        f"balance    {format_usd(found.balance)} USD\n"
        f"held       {format_usd(found.held)} USD ({found.open_holds} open holds)\n"
        f"available  {format_usd(found.available)} USD"
    )
    emit(as_json, balance_json(org_id, found), text)


@click.command("ledger")
@ORG
@click.option(
    "--since", default="30d", show_default=True, help="ISO 8601 time, or a span back from now (90m, 24h, 7d)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=10_000,
    show_default=True,
    help="At most this many entries.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header line, then one line per entry).")
@json_option
def ledger(org_ref: str, since: str, limit: int, as_csv: bool, as_json: bool) -> None:
    """An org's ledger entries since a time, oldest first: grants, holds, settlements, releases."""
    if as_csv and as_json:
        raise click.UsageError("choose one of --csv and --json")

    async def run(db: Database) -> list[Entry]:
        start = report.parse_instant(since, now=utcnow(), param="since")
        org_id = await _org_id(db, org_ref)
        async with db.session() as session:
            return await list_entries(session, org_id, since=start, limit=limit)

    entries = run_with_database(run, as_json=as_json)
    if as_csv:
        click.echo(entries_csv(entries), nl=False)
        return
    lines = [
        f"{e.created_at:%Y-%m-%d %H:%M:%S}  {e.kind.value:<10}  {format_usd(e.amount):>14}  "
        f"{format_usd(e.effect):>14}  {e.hold_id or e.id}  {e.idempotency_key}"
        for e in entries
    ]
    header = f"{'created (UTC)':<19}  {'kind':<10}  {'amount USD':>14}  {'balance +/-':>14}  hold/entry  idempotency key"
    emit(
        as_json,
        [entry_json(e) for e in entries],
        "\n".join([header, *lines]) if lines else f"no ledger entries since {since}",
    )
