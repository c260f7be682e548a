"""Usage summaries: what an org's segments consumed in a time window, grouped as asked.

One `GROUP BY` over `usage_records` (indexed by org and time), never a scan of rows in Python.
The groups are the columns a bill or a dashboard splits by: `billing_source` (where the cost
lands), `segment` (llm, stt, tts), `provider`, `model`, `intent`, `status`, `agent_id`,
`api_key_id`, `profile_id`, and `day` (UTC). Totals are segment counts, tokens, audio seconds
and characters, the units each segment is billed in, and `cost_micro_usd`: what the org was
charged for those segments (each record's cost, written when it was settled; integer micro-USD).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tables import UsageRecord
from foundation.errors import RequestError

_COLUMNS: dict[str, Any] = {
    "billing_source": UsageRecord.billing_source,
    "segment": UsageRecord.segment,
    "provider": UsageRecord.provider,
    "model": UsageRecord.model,
    "intent": UsageRecord.intent,
    "status": UsageRecord.status,
    "agent_id": UsageRecord.agent_id,
    "api_key_id": UsageRecord.api_key_id,
    "profile_id": UsageRecord.profile_id,
}
GROUPS = (*_COLUMNS, "day")
MEASURES = (
    "segments",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "audio_seconds",
    "characters",
    "cost_micro_usd",
)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    group: dict[str, str | None]
    """The group's values, one per `group_by` name (`day` as YYYY-MM-DD)."""
    totals: dict[str, int | float]
    """Each of `MEASURES`."""


def _day(session: AsyncSession) -> ColumnElement[Any]:
    created = UsageRecord.created_at
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", created))
    return func.date(created)  # SQLite keeps UTC wall time


def check_groups(group_by: Sequence[str]) -> tuple[str, ...]:
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise RequestError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUPS)}", param="group_by"
        )
    if len(set(group_by)) != len(group_by):
        raise RequestError("each group_by name may appear once", param="group_by")
    return tuple(group_by)


async def summarize(
    session: AsyncSession, org_id: str, *, since: datetime, until: datetime, group_by: Sequence[str] = ()
) -> list[UsageTotals]:
    """The org's usage from `since` (inclusive) to `until` (exclusive), one entry per group,
    ordered by the group values; with no `group_by`, one entry for the whole window."""
    groups = check_groups(group_by)
    if until <= since:
        raise RequestError("`until` must be after `since`", param="until")
    keys = [(_day(session) if g == "day" else _COLUMNS[g]).label(g) for g in groups]
    u = UsageRecord
    measures = [
        func.count().label("segments"),
        *(func.coalesce(func.sum(getattr(u, name)), 0).label(name) for name in MEASURES[1:]),
    ]
    query = (
        select(*keys, *measures)
        .where(u.org_id == org_id, u.created_at >= since, u.created_at < until)
        .group_by(*keys)
        .order_by(*keys)
    )
    entries = []
    for row in (await session.execute(query)).all():
        mapping = row._mapping
        group = {g: _text(mapping[g]) for g in groups}
        totals: dict[str, int | float] = {m: mapping[m] for m in MEASURES}
        totals["audio_seconds"] = round(float(totals["audio_seconds"]), 3)
        totals["cost_micro_usd"] = int(totals["cost_micro_usd"])  # PostgreSQL sums a BIGINT as NUMERIC
        if not groups and totals["segments"] == 0:
            break
        entries.append(UsageTotals(group, totals))
    return entries


_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_span(text: str) -> timedelta | None:
    """`90m`, `24h`, `7d` as a duration; None when `text` is not a span. Raises `OverflowError`
    for a span no `timedelta` holds."""
    relative = _RELATIVE.match(text.strip())
    if relative is None:
        return None
    return timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})


def parse_instant(text: str, *, now: datetime, param: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a span back from `now`: `90m`, `24h`, `7d`."""
    try:
        span = parse_span(text)
        if span is not None:
            return now - span
    except OverflowError:
        raise RequestError(f"{param} is too far back", param=param) from None
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RequestError(
            f"{param} must be an ISO 8601 time or a span such as 24h or 7d, not {text[:40]!r}", param=param
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def window(since: str, until: str | None, *, now: datetime) -> tuple[datetime, datetime]:
    """`since` and `until` as a request gives them (`until` absent: now), parsed."""
    start = parse_instant(since, now=now, param="since")
    return start, parse_instant(until, now=now, param="until") if until else now


def parse_groups(text: str) -> list[str]:
    """`billing_source, segment` → the names; checked by `summarize`."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)
