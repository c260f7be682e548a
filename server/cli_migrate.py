"""`patchbay migrate ...`: imports from earlier systems."""

from __future__ import annotations

from pathlib import Path

import click

from billing import legacy_billing
from billing.ledger import Ledger
from billing.ledger_history import Status
from foundation.db import utcnow
from providers.vault.audit import DecryptAuditWriter
from server import legacy_billing as billing_import
from server.cli_common import (
    EXIT_FAILED,
    EXIT_PARTIAL,
    emit,
    fail,
    json_option,
    load_settings,
    run_with_database,
)
from server.db import Database
from server.legacy import LineError, OrgReport, apply_one, parse_lines
from server.vault_keys import VaultKeyStore, build_vault


@click.group()
def migrate() -> None:
    """Import data from earlier systems."""


@migrate.command("legacy-settings")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def legacy_settings(file: Path, as_json: bool) -> None:
    """Import per-org AI settings from a JSON-lines FILE (one org per line).

    Valid lines are applied one org at a time, each in its own transaction; invalid lines
    are reported by line number and nothing is written for them. Re-running with the same
    file changes nothing. Exits 4 when some lines were rejected.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text", as_json=as_json)
    good, bad = parse_lines(text.splitlines())
    settings = load_settings()

    async def apply_all(db: Database) -> list[OrgReport]:
        audit = DecryptAuditWriter(db.sessions)
        audit.start()
        keys = VaultKeyStore(build_vault(settings, db, audit))
        reports = []
        try:
            for done, (line, item) in enumerate(good, start=1):
                async with db.session() as session:
                    reports.append(await apply_one(session, keys, line, item))
                if not as_json and len(good) > 20 and (done % 20 == 0 or done == len(good)):
                    click.echo(f"[{done}/{len(good)}] orgs imported", err=True)
        finally:
            await audit.aclose()
        return reports

    reports = run_with_database(apply_all, as_json=as_json, settings=settings)
    _print(as_json, reports, bad)
    if bad:
        raise SystemExit(EXIT_PARTIAL)


@migrate.command("legacy-billing")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Decide every line and report, but write nothing.")
@click.option(
    "--strict", is_flag=True, help="Write nothing if any line is malformed or names an unknown org."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=billing_import.BATCH_SIZE,
    show_default=True,
    help="Rows of one org per transaction.",
)
@json_option
def legacy_billing_command(file: Path, dry_run: bool, strict: bool, batch_size: int, as_json: bool) -> None:
    """Import the predecessor's token-billing rows from a JSON-lines FILE as historical charges.

    Each line is {"orgId", "requestId", "model", "promptTokens", "completionTokens", "costUsd",
    "ts"}; each valid row becomes one settle in the org's ledger keyed by its request id, so
    running the same file again changes nothing. A request id Patchbay already charged is
    skipped. Bad lines are reported by line number and write nothing; the rest are imported
    (with --strict, nothing is written when any line is malformed or names an unknown org).
    Exit codes: 0 done, 1 --strict refused the file, 2 usage, 3 database not ready, 4 some
    lines were errors.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text", as_json=as_json)
    parsed = legacy_billing.parse_lines(text.splitlines(), now=utcnow())

    def progress(done: int, total: int) -> None:
        if not as_json and total > batch_size:
            click.echo(f"[{done}/{total}] rows", err=True)

    async def run(db: Database) -> tuple[billing_import.ImportReport, bool]:
        refused = billing_import.problems(parsed, await billing_import.unknown_orgs(db, parsed))
        if strict and any(r.status is Status.ERROR for r in refused):
            return billing_import.ImportReport(results=sorted(refused, key=lambda r: r.line)), True
        report = await billing_import.apply(
            Ledger(db.sessions), parsed, refused, dry_run=dry_run, batch_size=batch_size, progress=progress
        )
        return report, False

    report, aborted = run_with_database(run, as_json=as_json)
    payload = {**report.as_json(dry_run=dry_run), "aborted": aborted}
    text_out = report.as_text(dry_run=dry_run)
    if aborted:
        text_out += "\nnothing was written (--strict): fix the lines above and run again"
    emit(as_json, payload, text_out)
    if aborted:
        raise SystemExit(EXIT_FAILED)
    if report.has_errors:
        raise SystemExit(EXIT_PARTIAL)


def _print(as_json: bool, reports: list[OrgReport], bad: list[LineError]) -> None:
    lines = []
    for r in reports:
        what = ", ".join(r.actions) if r.changed else "unchanged"
        lines.append(f"line {r.line}: org {r.org_id}: {what}")
    lines += [f"line {e.line}: rejected: {e.message}" for e in bad]
    changed = sum(r.changed for r in reports)
    lines.append(f"{len(reports)} org(s) processed, {changed} changed, {len(bad)} line(s) rejected")
    payload = {
        "orgs": [
            {"line": r.line, "org_id": r.org_id, "changed": r.changed, "actions": r.actions} for r in reports
        ],
        "rejected": [{"line": e.line, "message": e.message} for e in bad],
    }
    emit(as_json, payload, "\n".join(lines))
