"""Admin endpoints for an org's credits: the admin API equivalents of `patchbay credits` and
`patchbay ledger`, and what the org's usage cost over a window (docs/admin-api.md, Billing).

- `GET  /admin/v1/orgs/{org}/billing/balance`: balance, held, available and the open holds.
- `GET  /admin/v1/orgs/{org}/billing/ledger`: entries newest first, a page at a time (JSON), or
  the CSV of `patchbay ledger --csv` (`?format=csv` or `Accept: text/csv`).
- `GET  /admin/v1/orgs/{org}/billing/costs`: cost by billing source, provider or agent, with a
  series per UTC day for a chart.
- `POST /admin/v1/orgs/{org}/billing/grants`: grant credits; the operator's alone, and it needs an
  `Idempotency-Key` header (a retry with the same key never grants twice).

The reads need the `billing` permission (owners and the billing role); who may call what is
decided in `server.access.policy` before any of this runs. Amounts are exact decimal strings of
USD beside integer micro-USD (`billing.statement`), never floats.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import select

from billing import report
from billing.ledger_query import open_holds, page_entries
from billing.ledger_tables import EntryKind
from billing.money import AmountError, format_usd, parse_usd
from billing.statement import CSV_MEDIA_TYPE, balance_json, entries_csv, entry_json, hold_json
from foundation.db import utcnow
from foundation.errors import RequestError
from routing.tables import Agent
from server import accounts
from server.admin.auth import require_admin
from server.admin.orgs import CallerDep, ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin", "billing"])
_B = "/orgs/{org}/billing"
HOLDS_SHOWN = 100
PAGE_DEFAULT, PAGE_MAX = 100, 1_000
CSV_DEFAULT, CSV_MAX = 10_000, 100_000
BY_COLUMN = {"source": "billing_source", "provider": "provider", "agent": "agent_id"}


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr | StrictInt = Field(
        description='USD as a decimal string (`"25"`, `"0.50"`, at most 6 decimal places) or a whole number; never a float.'
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Kept in the ledger entry. No secrets."
    )


@router.get(f"{_B}/balance")
async def balance(org: str, svc: ServicesDep) -> dict[str, Any]:
    """What `patchbay credits balance --json` prints, and the open holds (oldest first, at most 100)."""
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        holds = await open_holds(s, org_id, limit=HOLDS_SHOWN)
    found = await svc.ledger.balance(org_id)
    return {**balance_json(org_id, found), "holds": [hold_json(h) for h in holds]}


@router.get(f"{_B}/ledger", response_model=None)
async def ledger(
    org: str,
    request: Request,
    svc: ServicesDep,
    since: str = "30d",
    until: str | None = None,
    kind: str = Query(
        default="", description="Comma-separated entry kinds (grant, hold, settle, ...); empty: all."
    ),
    limit: int | None = Query(default=None, ge=1, le=CSV_MAX),
    cursor: str | None = Query(default=None, max_length=200),
    format: Literal["json", "csv"] | None = None,
) -> dict[str, Any] | Response:
    """Entries in the window, newest first, `limit` a page (default 100, at most 1,000) with
    `next_cursor` for the next; CSV: the newest `limit` (default 10,000) oldest first."""
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if limit is not None and not as_csv and limit > PAGE_MAX:
        raise RequestError(f"limit is at most {PAGE_MAX} for a JSON page (use next_cursor)", param="limit")
    size = limit or (CSV_DEFAULT if as_csv else PAGE_DEFAULT)
    start, end = report.window(since, until, now=utcnow())
    kinds = _kinds(kind)
    after = None if as_csv else _cursor_in(cursor)
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        entries = await page_entries(s, org_id, since=start, until=end, kinds=kinds, limit=size, before=after)
    if as_csv:
        name = f"ledger-{org_id}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        return Response(
            entries_csv(reversed(entries)),
            media_type=CSV_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    more = len(entries) == size
    return {
        "org_id": org_id,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "entries": [entry_json(e) for e in entries],
        "next_cursor": _cursor_out(entries[-1]) if more and entries else None,
    }


@router.get(f"{_B}/costs")
async def costs(
    org: str,
    svc: ServicesDep,
    since: str = "30d",
    until: str | None = None,
    by: Literal["source", "provider", "agent"] = "source",
) -> dict[str, Any]:
    """What the org was charged in the window by billing source, provider or agent (from the
    usage records' costs), largest first, and per UTC day for a chart."""
    start, end = report.window(since, until, now=utcnow())
    column = BY_COLUMN[by]
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        groups = await report.summarize(s, org_id, since=start, until=end, group_by=[column])
        days = await report.summarize(s, org_id, since=start, until=end, group_by=["day", column])
        names = await _agent_names(s, org_id) if by == "agent" else {}
    total = sum(int(g.totals["cost_micro_usd"]) for g in groups)
    ranked = sorted(groups, key=lambda g: (-int(g.totals["cost_micro_usd"]), g.group[column] or ""))
    return {
        "org_id": org_id,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "by": by,
        "unit": "micro-USD",
        "total_usd": format_usd(total),
        "total_micro_usd": total,
        "groups": [_cost_group(g.group[column], g.totals, names) for g in ranked],
        "days": [
            {"day": d.group["day"], "key": d.group[column], "cost_micro_usd": int(d.totals["cost_micro_usd"])}
            for d in days
        ],
    }


@router.post(f"{_B}/grants", status_code=201)
async def grant(
    org: str,
    body: GrantIn,
    response: Response,
    svc: ServicesDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Grant credits (`patchbay credits grant`): 201 with the entry and the new balance; a replay
    of the same key and amount answers 200 with the first entry and `replayed: true`."""
    if not idempotency_key:
        raise RequestError(
            "send an Idempotency-Key header (any unique string, such as a UUID) and reuse it when you retry",
            param="Idempotency-Key",
        )
    micro = parse_usd(body.amount)
    if micro == 0:
        raise AmountError("amount must be more than zero", param="amount")
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
    entry = await svc.ledger.grant(org_id, micro, idempotency_key, body.reason, actor=caller.acting().actor)
    found = await svc.ledger.balance(org_id)
    if entry.replayed:
        response.status_code = 200
    return {
        "entry": entry_json(entry),
        "idempotency_key": idempotency_key,
        "replayed": entry.replayed,
        "balance": balance_json(org_id, found),
    }


def _kinds(text: str) -> list[EntryKind]:
    names = [k.strip() for k in text.split(",") if k.strip()]
    known = {k.value for k in EntryKind}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RequestError(
            f"unknown entry kind {', '.join(unknown)}; choose from {', '.join(sorted(known))}", param="kind"
        )
    return [EntryKind(n) for n in names]


def _cursor_out(entry: Any) -> str:
    raw = f"{entry.created_at.isoformat()}|{entry.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_in(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, entry_id = raw.split("|", 1)
        return datetime.fromisoformat(at), entry_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise RequestError(
            "cursor is not one this API gave out; use next_cursor as returned", param="cursor"
        ) from None


async def _agent_names(session: Any, org_id: str) -> dict[str, str]:
    rows = await session.execute(select(Agent.id, Agent.name).where(Agent.org_id == org_id))
    return {row.id: row.name for row in rows}


def _cost_group(key: str | None, totals: dict[str, int | float], names: dict[str, str]) -> dict[str, Any]:
    cost = int(totals["cost_micro_usd"])
    return {
        "key": key,
        "label": names.get(key, key) if key is not None else None,
        "segments": totals["segments"],
        "cost_usd": format_usd(cost),
        "cost_micro_usd": cost,
    }
