"""Monthly budgets and per-key spend limits on the request path, from memory.

`SpendCaps.reserve` decides whether a chargeable segment may run (`billing.spend.Usage.refuses`)
from what this process holds in memory: each org's caps and this month's totals, loaded from the
database on the org's first request (and again after `drop_org`), then kept up to date in
process: each settle adds its charge (`close`) and each request in flight counts its hold until
it settles (a request that never closes stops counting after the hold TTL, as its ledger hold
does). So deciding costs no database round trip.

Other processes' charges arrive through `poll`, a hook of the registry's config poll (every
`PATCHBAY_*` poll interval, never per request), which re-reads the caps and the month's totals
of every org this process holds in two queries. Totals only grow within a month, so a refresh
never lowers what this process already counted. Between two polls a replica does not see what
the others charged: the cap can be overshot by what the other replicas charge in one poll
interval (each may spend the room it saw at its last refresh). See
docs/billing.md#budgets-and-spend-limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.ledger import DEFAULT_HOLD_TTL
from billing.spend import BudgetExceededError, SpendLimitExceededError, Usage, month_of
from billing.spend_store import OrgSpend, load
from billing.spend_tables import ORG_SCOPE
from foundation.db import utcnow


@dataclass(eq=False, slots=True)
class Reservation:
    """A request's hold counted against its org's budget and its key's limit until it closes
    (or, if it never does, until `expires_at`, like the ledger hold it stands for)."""

    org_id: str
    api_key_id: str | None
    amount: int
    expires_at: datetime

    def scopes(self) -> tuple[tuple[str, str], ...]:
        org = (self.org_id, ORG_SCOPE)
        return (org, (self.org_id, self.api_key_id)) if self.api_key_id else (org,)


class SpendCaps:
    """Every org's caps and month-to-date spend as this process knows them. One per process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        hold_ttl: timedelta = DEFAULT_HOLD_TTL,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._hold_ttl = hold_ttl
        self._orgs: dict[str, OrgSpend] = {}
        self._reserved: dict[tuple[str, str], int] = {}
        self._open: dict[Reservation, None] = {}
        """Reservations not closed yet (an ordered set)."""

    async def reserve(self, org_id: str, api_key_id: str | None, hold: int) -> Reservation:
        """Count a chargeable request's `hold` (micro-USD, may be 0) against the org's budget and
        the key's limit; raises `BudgetExceededError` or `SpendLimitExceededError` instead when
        it would go over either (nothing is counted then)."""
        spend = await self._current(org_id)
        if spend.budget is not None:
            usage = Usage(spend.budget, spend.spent, self._reserved.get((org_id, ORG_SCOPE), 0))
            if usage.refuses(hold):
                raise BudgetExceededError(org_id, usage, hold)
        limit = spend.key_limits.get(api_key_id) if api_key_id else None
        if api_key_id and limit is not None:
            usage = Usage(
                limit, spend.key_spent.get(api_key_id, 0), self._reserved.get((org_id, api_key_id), 0)
            )
            if usage.refuses(hold):
                raise SpendLimitExceededError(org_id, api_key_id, usage, hold)
        reservation = Reservation(org_id, api_key_id, hold, self._clock() + self._hold_ttl)
        self._open[reservation] = None
        for scope in reservation.scopes():
            self._reserved[scope] = self._reserved.get(scope, 0) + hold
        return reservation

    def close(self, reservation: Reservation, charged: int) -> None:
        """The request ended: stop counting its hold, and count what it was charged (settled)."""
        self._unreserve(reservation)
        spend = self._orgs.get(reservation.org_id)
        if charged <= 0 or spend is None or spend.month != month_of(self._clock()):
            return
        spend.spent += charged
        if reservation.api_key_id:
            spend.key_spent[reservation.api_key_id] = spend.key_spent.get(reservation.api_key_id, 0) + charged

    def _unreserve(self, reservation: Reservation) -> None:
        if reservation not in self._open:
            return  # closed already, or expired
        del self._open[reservation]
        for scope in reservation.scopes():
            left = self._reserved.get(scope, 0) - reservation.amount
            if left > 0:
                self._reserved[scope] = left
            else:
                self._reserved.pop(scope, None)

    def now(self) -> datetime:
        """The time by this process's billing clock (whose month the caps count)."""
        return self._clock()

    def spent(self, org_id: str, api_key_id: str | None = None) -> int | None:
        """This month's spend as this process knows it (None: the org is not loaded here)."""
        spend = self._orgs.get(org_id)
        if spend is None:
            return None
        return spend.key_spent.get(api_key_id, 0) if api_key_id else spend.spent

    def drop_org(self, org_id: str) -> None:
        """The org's caps changed in this process: read them again on its next request."""
        self._orgs.pop(org_id, None)

    async def poll(self, session: AsyncSession) -> None:
        """Re-read the caps and this month's totals of every org held here (a registry poll hook),
        and stop counting reservations past their TTL (a request that never closed)."""
        now = self._clock()
        for reservation in [r for r in self._open if r.expires_at <= now]:
            self._unreserve(reservation)
        if not self._orgs:
            return
        month = month_of(now)
        fresh = await load(session, list(self._orgs), month)
        for org_id, new in fresh.items():
            old = self._orgs.get(org_id)
            if old is None:
                continue  # dropped while reading: its next request loads it
            if old.month == month:
                # Totals only grow within a month: a settle counted here but committed after the
                # read above is not lost.
                new.spent = max(new.spent, old.spent)
                for key, spent in old.key_spent.items():
                    new.key_spent[key] = max(new.key_spent.get(key, 0), spent)
            self._orgs[org_id] = new

    async def _current(self, org_id: str) -> OrgSpend:
        month = month_of(self._clock())
        spend = self._orgs.get(org_id)
        if spend is None:
            async with self._sessions() as session:
                spend = (await load(session, [org_id], month))[org_id]
            self._orgs.setdefault(org_id, spend)
            spend = self._orgs[org_id]
        if spend.month != month:
            # A new month: nothing charged in it yet as far as this process knows; the next poll
            # reads what other processes charged since it began.
            spend = OrgSpend(month=month, budget=spend.budget, key_limits=spend.key_limits)
            self._orgs[org_id] = spend
        return spend
