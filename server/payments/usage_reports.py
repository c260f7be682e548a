"""The BYOK surcharge on the org's Stripe invoice: usage records batched into meter events.

Off the request path: a request settles its BYOK surcharge on credits as before
(`billing.credits_preflight`) and its usage record carries the amount (`cost_micro_usd` of a
`byok` or `private` record). `UsageReporter`, one background task per process with Stripe
configured, then works in two steps every interval:

1. **claim**: per org with unreported records (`billing.tables.UNREPORTED`), one transaction
   marks up to `batch` of them with a new report id (`UPDATE ... WHERE report_id IS NULL`, so
   two replicas never claim a record twice) and writes the `usage_reports` row with their sum.
   An org with no live Stripe subscription (none, or one Stripe ended) has its records marked
   `credits`: their surcharge stays charged to credits and is never reported.
2. **send**: every report not yet sent becomes one meter event (`StripePayments.report_usage`)
   whose `identifier` is the report id, so a resend after a lost answer or a crash is dropped by
   Stripe; then the same amount is returned to credits (a ledger `refund` keyed
   `stripe:usage:REPORT_ID`, idempotent), since the invoice now bills it; then `sent_at` is
   set. A send Stripe refuses or cannot take is counted (`attempts`, `last_error`) and retried
   at the next interval. Nothing here runs when Stripe is not configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.ledger import Ledger
from billing.tables import UNREPORTED, UsageRecord
from foundation.background import PeriodicTask
from foundation.db import new_id, utcnow
from foundation.errors import RequestError
from server.payments.client import StripePayments
from server.payments.events import KEEPS_TIER
from server.payments.tables import StripeCustomer, UsageReport

log = logging.getLogger("patchbay.payments")
DEFAULT_INTERVAL = 300.0
STAYS_ON_CREDITS = "credits"
"""`usage_records.report_id` of a surcharge that is not reported (no live subscription)."""


class UsageReporter:
    def __init__(
        self,
        payments: StripePayments,
        sessions: async_sessionmaker[AsyncSession],
        ledger: Ledger,
        *,
        interval: float = DEFAULT_INTERVAL,
        batch: int = 1000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._payments = payments
        self._sessions = sessions
        self._ledger = ledger
        self._batch = batch
        self._clock = clock
        self._background = PeriodicTask(
            "patchbay-usage-reporter", lambda: self.run_once(), interval, log=log, what="usage report run"
        )

    async def run_once(self) -> list[UsageReport]:
        """Claim what is unreported, then send every unsent report; returns the reports sent."""
        await self.claim()
        return await self.send()

    async def claim(self) -> list[UsageReport]:
        """Batch every unreported surcharge record into reports (not sent yet); returns them."""
        async with self._sessions() as session:
            orgs = (
                await session.scalars(select(UsageRecord.org_id).where(text(UNREPORTED)).distinct())
            ).all()
        made: list[UsageReport] = []
        for org_id in orgs:
            while (report := await self._claim_batch(org_id)) is not None:
                made.append(report)
        return made

    async def _claim_batch(self, org_id: str) -> UsageReport | None:
        async with self._sessions() as session, session.begin():
            customer = await session.get(StripeCustomer, org_id)
            unreported = (UsageRecord.org_id == org_id, UsageRecord.report_id.is_(None), text(UNREPORTED))
            if customer is None or customer.subscription_status not in KEEPS_TIER:
                await session.execute(
                    update(UsageRecord).where(*unreported).values(report_id=STAYS_ON_CREDITS)
                )
                return None
            ids = (
                await session.scalars(
                    select(UsageRecord.id)
                    .where(*unreported)
                    .order_by(UsageRecord.created_at)
                    .limit(self._batch)
                )
            ).all()
            if not ids:
                return None
            report_id = new_id("mev")
            await session.execute(
                update(UsageRecord)
                .where(UsageRecord.id.in_(ids), UsageRecord.report_id.is_(None))
                .values(report_id=report_id)
            )
            value, records = (
                await session.execute(
                    select(func.coalesce(func.sum(UsageRecord.cost_micro_usd), 0), func.count()).where(
                        UsageRecord.report_id == report_id
                    )
                )
            ).one()
            if not records:
                return None  # another replica claimed them first
            report = UsageReport(
                id=report_id,
                org_id=org_id,
                customer_id=customer.customer_id,
                value=int(value),
                records=int(records),
                created_at=self._clock(),
                attempts=0,
            )
            session.add(report)
        return report

    async def send(self) -> list[UsageReport]:
        """Send every report not sent yet, oldest first; a failure leaves it for the next run."""
        async with self._sessions() as session:
            pending = (
                await session.scalars(
                    select(UsageReport).where(UsageReport.sent_at.is_(None)).order_by(UsageReport.created_at)
                )
            ).all()
        sent: list[UsageReport] = []
        for report in pending:
            if await self._send_one(report):
                sent.append(report)
        if sent:
            log.info("BYOK surcharge reported to Stripe", extra={"fields": {"reports": len(sent)}})
        return sent

    async def _send_one(self, report: UsageReport) -> bool:
        try:
            await self._payments.report_usage(
                report.customer_id, report.value, report.id, int(report.created_at.timestamp())
            )
        except RequestError as exc:
            await self._failed(report.id, str(exc))
            return False
        # Stripe bills it now: give the credits it was settled on back, once (keyed by the report).
        await self._ledger.refund(
            report.org_id,
            report.value,
            f"stripe:usage:{report.id}",
            f"BYOK surcharge of {report.records} segments moved to the Stripe invoice (meter event {report.id})",
            actor="stripe",
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(UsageReport)
                .where(UsageReport.id == report.id, UsageReport.sent_at.is_(None))
                .values(sent_at=self._clock(), attempts=UsageReport.attempts + 1, last_error=None)
            )
        return True

    async def _failed(self, report_id: str, error: str) -> None:
        log.warning(
            "BYOK surcharge report failed", extra={"fields": {"report": report_id, "error": error[:200]}}
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(UsageReport)
                .where(UsageReport.id == report_id)
                .values(attempts=UsageReport.attempts + 1, last_error=error[:200])
            )

    @property
    def running(self) -> bool:
        return self._background.running

    def start(self) -> None:
        self._background.start()

    async def aclose(self) -> None:
        await self._background.stop()
