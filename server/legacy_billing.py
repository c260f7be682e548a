"""`patchbay migrate legacy-billing`: the predecessor's token-billing rows into the credits ledger.

The lines are parsed and checked first (`billing.legacy_billing`); rows of orgs that do not exist
are errors (a legacy org id is our org id, as `patchbay migrate legacy-settings` keeps it). The
rest go to `Ledger.import_history` one org and one batch at a time, each batch one transaction
under that org's lock (`billing.ledger_history` says what each row becomes). The report has one
outcome per line, in line order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from billing.ledger import Ledger
from billing.ledger_history import Outcome, Status
from billing.legacy_billing import LegacyRow, ParsedFile
from billing.money import format_usd
from foundation.orgs import Org
from server.db import Database

BATCH_SIZE = 200
"""Rows of one org per transaction: long enough to amortise the lock and the request-path check
(one pass over the org's entries), short enough not to keep the org's writers waiting."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    status: Status
    message: str | None = None
    org_id: str | None = None
    request_id: str | None = None
    entry_id: str | None = None


@dataclass
class ImportReport:
    results: list[LineResult] = field(default_factory=list)
    imported_micro_usd: int = 0

    def count(self, status: Status) -> int:
        return sum(r.status is status for r in self.results)

    @property
    def has_errors(self) -> bool:
        return self.count(Status.ERROR) > 0

    def summary(self) -> dict[str, int]:
        return {
            "imported": self.count(Status.IMPORTED),
            "skipped_duplicate": self.count(Status.SKIPPED_DUPLICATE),
            "skipped_charged": self.count(Status.SKIPPED_CHARGED),
            "errors": self.count(Status.ERROR),
        }

    def as_json(self, *, dry_run: bool) -> dict[str, object]:
        lines = [
            {
                k: v
                for k, v in (
                    ("line", r.line),
                    ("status", r.status.value),
                    ("org_id", r.org_id),
                    ("request_id", r.request_id),
                    ("message", r.message),
                    ("entry_id", r.entry_id),
                )
                if v is not None
            }
            for r in self.results
            if r.status is not Status.IMPORTED
        ]
        return {
            **self.summary(),
            "imported_usd": format_usd(self.imported_micro_usd),
            "imported_micro_usd": self.imported_micro_usd,
            "dry_run": dry_run,
            "lines": lines,
        }

    def as_text(self, *, dry_run: bool) -> str:
        out = [
            f"line {r.line}: {r.status.value}" + (f": {r.message}" if r.message else "")
            for r in self.results
            if r.status is not Status.IMPORTED
        ]
        s = self.summary()
        verb = "would import" if dry_run else "imported"
        out.append(
            f"{verb} {s['imported']} row(s) ({format_usd(self.imported_micro_usd)} USD); skipped "
            f"{s['skipped_duplicate']} already imported and {s['skipped_charged']} charged by Patchbay; "
            f"{s['errors']} error(s)"
        )
        return "\n".join(out)


async def unknown_orgs(db: Database, parsed: ParsedFile) -> list[LineResult]:
    """An error for every row whose org does not exist (nothing is created for billing rows)."""
    wanted = sorted({row.org_id for row in parsed.rows})
    known: set[str] = set()
    async with db.session() as session:
        for start in range(0, len(wanted), 500):  # well under either database's parameter limit
            chunk = wanted[start : start + 500]
            known.update(
                str(i) for i in (await session.scalars(select(Org.id).where(Org.id.in_(chunk)))).all()
            )
    return [
        LineResult(
            row.line,
            Status.ERROR,
            f"org {row.org_id!r} does not exist: import its settings first (patchbay migrate "
            "legacy-settings) or create it (patchbay org create)",
            row.org_id,
            row.request_id,
        )
        for row in parsed.rows
        if row.org_id not in known
    ]


def problems(parsed: ParsedFile, missing_orgs: Iterable[LineResult]) -> list[LineResult]:
    """Every line that cannot be imported whatever the ledger holds, and the file's repeats."""
    found = [LineResult(e.line, Status.ERROR, e.message) for e in parsed.errors]
    found += [
        LineResult(d.line, Status.SKIPPED_DUPLICATE, f"same as line {d.first_line}", d.org_id, d.request_id)
        for d in parsed.duplicates
    ]
    return found + list(missing_orgs)


async def apply(
    ledger: Ledger,
    parsed: ParsedFile,
    refused: list[LineResult],
    *,
    dry_run: bool,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every parsed row not already `refused`, one org and one batch at a time. A dry run
    takes each org in one batch: it holds no lock, and its balance check must see every row."""
    skip = {r.line for r in refused}
    by_org: dict[str, list[LegacyRow]] = {}
    for row in parsed.rows:
        if row.line not in skip:
            by_org.setdefault(row.org_id, []).append(row)
    total = sum(len(rows) for rows in by_org.values())
    report = ImportReport(results=list(refused))
    done = 0
    for org_id, rows in by_org.items():
        size = len(rows) if dry_run else batch_size
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            outcomes = await ledger.import_history(org_id, batch, dry_run=dry_run)
            report.results += [_result(o) for o in outcomes]
            report.imported_micro_usd += sum(o.cost for o in outcomes if o.status is Status.IMPORTED)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    report.results.sort(key=lambda r: r.line)
    return report


def _result(outcome: Outcome) -> LineResult:
    return LineResult(
        outcome.line, outcome.status, outcome.message, outcome.org_id, outcome.request_id, outcome.entry_id
    )
