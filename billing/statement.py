"""The ledger as the surfaces show it: entries, balances and open holds as plain JSON-ready
dicts, and entries as CSV. The CLI (`patchbay credits`, `patchbay ledger`) and the admin API
(`/admin/v1/orgs/{org}/billing/...`) both print these, so their fields and columns are the same.

Every amount appears twice: as an exact decimal string of USD (`amount_usd`) and as the integer
micro-USD the ledger keeps (`amount_micro_usd`); never as a float.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from billing.ledger_query import OpenHold
from billing.ledger_types import Balance, Entry
from billing.money import format_usd

CSV_COLUMNS = (
    "created_at",
    "id",
    "kind",
    "amount_usd",
    "amount_micro_usd",
    "effect_micro_usd",
    "hold_id",
    "idempotency_key",
    "expires_at",
    "details",
)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "org_id": entry.org_id,
        "kind": entry.kind.value,
        "amount_usd": format_usd(entry.amount),
        "amount_micro_usd": entry.amount,
        "effect_micro_usd": entry.effect,
        "hold_id": entry.hold_id,
        "idempotency_key": entry.idempotency_key,
        "details": dict(entry.details),
        "created_at": entry.created_at.isoformat(),
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
    }


def balance_json(org_id: str, balance: Balance) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "unit": "micro-USD",
        "balance": format_usd(balance.balance),
        "held": format_usd(balance.held),
        "available": format_usd(balance.available),
        "balance_micro_usd": balance.balance,
        "held_micro_usd": balance.held,
        "available_micro_usd": balance.available,
        "open_holds": balance.open_holds,
    }


def hold_json(hold: OpenHold) -> dict[str, Any]:
    return {
        "hold_id": hold.hold_id,
        "amount_usd": format_usd(hold.amount),
        "amount_micro_usd": hold.amount,
        "created_at": hold.created_at.isoformat(),
        "expires_at": hold.expires_at.isoformat(),
        "details": hold.details,
    }


def entries_csv(entries: Iterable[Entry]) -> str:
    """A header line, then one line per entry; `details` as sorted JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        row = entry_json(e)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
    return out.getvalue()
