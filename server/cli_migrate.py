"""`patchbay migrate ...`: imports from earlier systems."""

from __future__ import annotations

from pathlib import Path

import click

from providers.vault.audit import DecryptAuditWriter
from server.cli_common import EXIT_PARTIAL, emit, fail, json_option, load_settings, run_with_database
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


def _print(as_json: bool, reports: list[OrgReport], bad: list[LineError]) -> None:
    lines = []
    for r in reports:
        what = ", ".join(r.actions) if r.changed else "unchanged"
        lines.append(f"line {r.line}: org {r.org_id}: {what}")
    lines += [f"line {e.line}: rejected: {e.message}" for e in bad]
    changed = sum(r.changed for r in reports)
    lines.append(f"{len(reports)} org(s) processed, {changed} changed, {len(bad)} line(s) rejected")
    payload = {
        "orgs": [{"line": r.line, "org_id": r.org_id, "changed": r.changed, "actions": r.actions} for r in reports],
        "rejected": [{"line": e.line, "message": e.message} for e in bad],
    }
    emit(as_json, payload, "\n".join(lines))
