"""`patchbay requests`: an org's recent /v1 and realtime requests from the request log.

Exit codes follow `server.cli`: 0 printed; 1 a bad value or an unknown org; 2 usage error; 3 not
ready (database unreachable or not migrated). The table shows one line per request, newest
first; `--json` prints every field, the route trace included.
"""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy.ext.asyncio import AsyncSession

from billing import report
from foundation.db import utcnow
from server import accounts
from server.activity import query
from server.cli_common import emit, json_option, run_in_session


@click.command("requests")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option(
    "--since", default="24h", show_default=True, help="ISO 8601 time, or a span back from now (90m, 24h, 7d)."
)
@click.option("--until", help="ISO 8601 time or span (default now).")
@click.option("--status", help="ok, error, cancelled, or an HTTP status such as 429.")
@click.option("--key", help="API key id or name.")
@click.option("--model", help="Model asked for, or served.")
@click.option(
    "--limit",
    type=click.IntRange(1, query.MAX_LIMIT),
    default=query.DEFAULT_LIMIT,
    show_default=True,
    help="Most requests to show.",
)
@json_option
def requests(
    org_ref: str,
    since: str,
    until: str | None,
    status: str | None,
    key: str | None,
    model: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """An org's recent requests, newest first: who, which model, how it was routed, how it ended."""

    async def read(session: AsyncSession) -> tuple[str, datetime, datetime, list[query.LoggedRequest]]:
        start, end = report.window(since, until, now=utcnow())
        org_id = (await accounts.get_org(session, org_ref)).id
        rows = await query.list_requests(
            session, org_id, since=start, until=end, status=status, key=key, model=model, limit=limit
        )
        return org_id, start, end, rows

    org_id, start, end, rows = run_in_session(read, as_json=as_json)
    payload = {"org_id": org_id, "since": start, "until": end, "requests": rows}
    emit(as_json, payload, requests_table(rows, start, end))


def requests_table(rows: list[query.LoggedRequest], start: datetime, end: datetime) -> str:
    window = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if not rows:
        return f"no requests from {window}"
    header = ["time (UTC)", "surface", "key", "model", "status", "error", "latency", "served by"]
    lines = [header] + [
        [
            f"{r.created_at:%m-%d %H:%M:%S}",
            r.surface,
            r.key_name or r.api_key_id or "-",
            r.model or "-",
            f"{r.status} {r.outcome}" if r.outcome != "ok" else str(r.status),
            r.error_type or "-",
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-",
            r.connection or "-",
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join([f"requests from {window}, newest first", *text])
