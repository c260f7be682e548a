"""An org's monthly budget and its API keys' spend limits: the operations the CLI and the
admin API both call, and how they are shown.

Amounts arrive as exact USD (`billing.money.parse_usd`; `none` or null removes a cap) and are
stored as micro-USD in billing's `spend_caps`. Enforcement is billing's (`billing.spend_caps`);
this process's copy is refreshed by the caller (`SpendCaps.drop_org`), other processes' by
their config poll. See docs/billing.md#budgets-and-spend-limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.money import format_usd, parse_usd
from billing.spend import month_of
from billing.spend_store import get_cap, set_cap, spent_in
from foundation.audit import AuditEvent
from foundation.db import utcnow
from server.accounts import get_api_key, get_org

NONE_WORDS = frozenset({"none", "off", "unlimited"})


def parse_cap(value: str | None, *, param: str) -> int | None:
    """`"50"` -> 50_000_000 micro-USD; `none` (or null) -> None: no cap."""
    if value is None or value.strip().lower() in NONE_WORDS:
        return None
    return parse_usd(value, param=param)


@dataclass(frozen=True, slots=True)
class CapInfo:
    """A cap and this month's spend against it, as the surfaces show them."""

    org_id: str
    month: str
    """The calendar month (UTC) `spent` covers: `YYYY-MM`."""
    limit_micro_usd: int | None
    spent_micro_usd: int
    api_key_id: str | None = None

    def as_json(self, name: str) -> dict[str, object]:
        """`name` is `monthly_budget` or `spend_limit`: both the exact USD and the micro-USD."""
        limit = self.limit_micro_usd
        return {
            "org_id": self.org_id,
            **({"api_key_id": self.api_key_id} if self.api_key_id else {}),
            name: format_usd(limit) if limit is not None else None,
            f"{name}_micro_usd": limit,
            "month": self.month,
            "spent_this_month": format_usd(self.spent_micro_usd),
            "spent_this_month_micro_usd": self.spent_micro_usd,
        }

    def text(self, what: str) -> str:
        limit = f"{format_usd(self.limit_micro_usd)} USD" if self.limit_micro_usd is not None else "none"
        return f"{what}: {limit}; spent in {self.month} (UTC): {format_usd(self.spent_micro_usd)} USD"


async def org_budget(session: AsyncSession, org_ref: str, *, now: datetime | None = None) -> CapInfo:
    org = await get_org(session, org_ref)
    month = month_of(now or utcnow())
    spent, _ = await spent_in(session, org.id, month)
    return CapInfo(org.id, month, await get_cap(session, org.id), spent)


async def set_org_budget(
    session: AsyncSession,
    org_ref: str,
    budget: int | None,
    *,
    actor: str = "admin",
    now: datetime | None = None,
) -> CapInfo:
    """Set the org's monthly budget (micro-USD; None removes it)."""
    now = now or utcnow()
    org = await get_org(session, org_ref)
    await set_cap(session, org.id, None, budget, now)
    details = {"monthly_budget_usd": format_usd(budget) if budget is not None else None}
    session.add(
        AuditEvent(
            org_id=org.id,
            actor=actor,
            action="org.budget",
            target_type="org",
            target_id=org.id,
            details=details,
        )
    )
    return await org_budget(session, org.id, now=now)


async def key_limit(
    session: AsyncSession, org_ref: str, key_id: str, *, now: datetime | None = None
) -> CapInfo:
    info = await get_api_key(session, org_ref, key_id)
    month = month_of(now or utcnow())
    _, per_key = await spent_in(session, info.org_id, month)
    return CapInfo(
        info.org_id, month, await get_cap(session, info.org_id, key_id), per_key.get(key_id, 0), key_id
    )


async def set_key_limit(
    session: AsyncSession,
    org_ref: str,
    key_id: str,
    limit: int | None,
    *,
    actor: str = "admin",
    now: datetime | None = None,
) -> CapInfo:
    """Set an API key's monthly spend limit (micro-USD; None removes it)."""
    now = now or utcnow()
    info = await get_api_key(session, org_ref, key_id)
    await set_cap(session, info.org_id, key_id, limit, now)
    details = {"prefix": info.prefix, "spend_limit_usd": format_usd(limit) if limit is not None else None}
    session.add(
        AuditEvent(
            org_id=info.org_id,
            actor=actor,
            action="apikey.spend_limit",
            target_type="api_key",
            target_id=key_id,
            details=details,
        )
    )
    return await key_limit(session, info.org_id, key_id, now=now)
