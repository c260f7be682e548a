"""The predecessor's charges written into the ledger as history, decided under the org's lock.

Each imported row becomes one `settle` entry without a hold, keyed `legacy:<request id>`, for the
row's exact cost, stamped with the time the predecessor charged it (`created_at`; the import's
own time is `details.imported_at`). A settle, not an adjustment: it is a cost like any other, so
balance = credits (grants, purchases, refunds, adjustments) − Σ settles keeps holding over the
org's whole history (docs/billing.md#legacy-billing-rows).

`apply` runs inside `Ledger._write` (one transaction, the org's lock held) and decides each row:

- `imported`: written; the balance goes down by the cost;
- `skipped_duplicate`: an entry with its key exists already with the same cost (a re-import);
- `skipped_charged`: Patchbay's request path settled that request id (a `settle` keyed
  `pf:<request id>:...`, `billing.credits_preflight`): it is never charged on both paths;
- `error`: imported before with another cost, in flight at Patchbay (an open hold for that
  request id: run again once it has ended), or more than the available balance (a historical
  charge is never capped: grant the org's legacy credits first). Nothing is written for it.

The request path refuses a request id once its legacy entry exists (`Ledger.hold` and
`Ledger.charge`, `ledger_rules.first_unless_imported`); both checks run under the same lock,
so whichever commits first wins and the other is skipped or refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import ledger_store as store
from billing.ledger_tables import ENTRIES, EntryKind
from billing.ledger_types import REQUEST_KEY_PREFIX, request_id_of
from billing.legacy_billing import LegacyRow
from billing.money import format_usd
from foundation.audit import AuditEntry
from foundation.db import new_id


class Status(StrEnum):
    IMPORTED = "imported"
    SKIPPED_DUPLICATE = "skipped_duplicate"
    SKIPPED_CHARGED = "skipped_charged"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Outcome:
    line: int
    org_id: str
    request_id: str
    status: Status
    cost: int
    """micro-USD, the row's."""
    message: str | None = None
    entry_id: str | None = None
    """The legacy entry (imported or found), or the request path's settle (`skipped_charged`)."""


async def apply(
    session: AsyncSession, account: store.Account, now: datetime, *, rows: Sequence[LegacyRow], write: bool
) -> list[Outcome]:
    """Decide (and, with `write`, write) `rows` of `account.org_id`, in order. Request ids must
    be distinct (`billing.legacy_billing.parse_lines` sees to it)."""
    org_id = account.org_id
    existing = await store.entries_by_keys(session, org_id, [row.key for row in rows])
    charged, in_flight = await _request_path(
        session, org_id, [r.request_id for r in rows if r.key not in existing]
    )
    available = account.available
    outcomes: list[Outcome] = []
    new: list[dict[str, Any]] = []
    for row in rows:
        first = existing.get(row.key)
        if first is not None:
            outcomes.append(_again(row, first.id, EntryKind(first.kind), int(first.amount)))
        elif row.request_id in charged:
            outcomes.append(
                _outcome(
                    row, Status.SKIPPED_CHARGED, "charged by Patchbay's request path", charged[row.request_id]
                )
            )
        elif row.request_id in in_flight:
            message = (
                f"in flight at Patchbay (hold {in_flight[row.request_id]} is open); "
                "run the import again once it has ended or expired"
            )
            outcomes.append(_outcome(row, Status.ERROR, message))
        elif row.cost > available:
            message = (
                f"the org's available {format_usd(available)} USD cannot cover this cost of {format_usd(row.cost)} USD; "
                "grant the org's legacy credits first (patchbay credits grant), then run the import again"
            )
            outcomes.append(_outcome(row, Status.ERROR, message))
        else:
            available -= row.cost
            entry = _entry(org_id, row, now) if write else None
            if entry is not None:
                new.append(entry)
            outcomes.append(_outcome(row, Status.IMPORTED, None, entry["id"] if entry else None))
    spent = sum(o.cost for o in outcomes if o.status is Status.IMPORTED)
    if new:  # one multi-row INSERT for the batch
        await session.execute(sa_insert(ENTRIES), new)
        await store.move(session, org_id, balance=-spent)
        await _audit(session, org_id, now, outcomes, spent)
    return outcomes


async def dry_run(
    sessions: async_sessionmaker[AsyncSession], org_id: str, now: datetime, rows: Sequence[LegacyRow]
) -> list[Outcome]:
    """What `apply` would decide, read without the lock and writing nothing."""
    async with sessions() as session:
        current = await store.balance(session, org_id)
        account = store.Account(org_id, current.balance, current.held, exists=True)
        return await apply(session, account, now, rows=rows, write=False)


async def _request_path(
    session: AsyncSession, org_id: str, request_ids: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """For the given request ids, those the request path settled (-> a settle's id) and those it
    holds right now (-> the open hold's id). A hold that was released charged nothing."""
    wanted = set(request_ids)
    prefixes = [f"{REQUEST_KEY_PREFIX}{request_id}:" for request_id in wanted if len(request_id) <= 64]
    rows = await store.entries_by_prefixes(session, org_id, prefixes, (EntryKind.HOLD, EntryKind.SETTLE))
    charged: dict[str, str] = {}
    holds: dict[str, str] = {}
    for row in rows:
        request_id = request_id_of(str(row.idempotency_key))
        if request_id not in wanted:
            continue
        if row.kind == EntryKind.SETTLE.value:
            charged.setdefault(request_id, str(row.id))
        else:
            holds[str(row.id)] = request_id
    open_ids = await store.open_among(session, holds)
    in_flight = {holds[hold_id]: hold_id for hold_id in sorted(open_ids)}
    return charged, in_flight


def _again(row: LegacyRow, entry_id: str, kind: EntryKind, amount: int) -> Outcome:
    if kind is EntryKind.SETTLE and amount == row.cost:
        return _outcome(row, Status.SKIPPED_DUPLICATE, "imported before", entry_id)
    message = (
        f"imported before as a {kind.value} of {format_usd(amount)} USD ({entry_id}); the ledger is "
        "append-only: correct the difference with an adjustment"
    )
    return _outcome(row, Status.ERROR, message, entry_id)


def _outcome(row: LegacyRow, status: Status, message: str | None, entry_id: str | None = None) -> Outcome:
    return Outcome(row.line, row.org_id, row.request_id, status, row.cost, message, entry_id)


def _entry(org_id: str, row: LegacyRow, now: datetime) -> dict[str, Any]:
    """The `ledger_entries` row of an imported charge: a settle without a hold, at the row's time."""
    details = {
        "reason": row.key,
        "source": "legacy",
        "request_id": row.request_id,
        "model": row.model,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "requested": row.cost,
        "held": 0,
        "imported_at": now.isoformat(),
    }
    return {
        "id": new_id("led"),
        "org_id": org_id,
        "kind": EntryKind.SETTLE.value,
        "amount": row.cost,
        "idempotency_key": row.key,
        "hold_id": None,
        "details": details,
        "created_at": row.at,
        "expires_at": None,
    }


async def _audit(
    session: AsyncSession, org_id: str, now: datetime, outcomes: list[Outcome], spent: int
) -> None:
    done = [o for o in outcomes if o.status is Status.IMPORTED]
    details = {
        "entries": str(len(done)),
        "amount_usd": format_usd(spent),
        "lines": f"{done[0].line}-{done[-1].line}",
    }
    table, values = AuditEntry(
        org_id, "cli", "credits.legacy_import", "org", org_id, details, at=now
    ).row_values()
    await session.execute(sa_insert(table).values(**values))
