"""Retention: delete request-log rows older than `PATCHBAY_REQUEST_LOG_RETENTION_DAYS`, and
phone-call handovers past their expiry (`server.realtime.handover`: a call's words, which a
call that never came back for them would otherwise leave until the next handover is written).

Each server process runs one `RetentionSweeper` task (started with the services): a sweep
right after start-up, then one every `interval` seconds. A sweep deletes in batches of
`batch` rows, each its own short transaction, until no row is older than the cutoff, so a
large backlog never holds a long lock. Several processes (workers, replicas) sweeping at once
is safe: deleting is idempotent, and on PostgreSQL each batch skips rows another sweeper has
locked (`FOR UPDATE SKIP LOCKED`) instead of waiting on them or deadlocking with it.

With retention 0 the request log keeps nothing: no row is written, and the sweeper deletes
any left from before. The cutoff is taken from `clock`, so tests sweep at a time of their choosing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.background import BackgroundTask
from foundation.db import utcnow
from server.activity.table import RequestLogRow
from server.tables import VoiceHandover

log = logging.getLogger("patchbay.activity")

DEFAULT_INTERVAL = 3600.0


class RetentionSweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        retention_days: int,
        interval: float = DEFAULT_INTERVAL,
        batch: int = 5000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.retention = timedelta(days=retention_days)
        self._interval = interval
        self._batch = batch
        self._clock = clock
        self._background = BackgroundTask("request-log-retention", self._run)

    def cutoff(self) -> datetime:
        """Rows created before this go."""
        return self._clock() - self.retention

    async def sweep_once(self) -> int:
        """Delete every row older than the cutoff; returns how many this call deleted."""
        cutoff = self.cutoff()
        row = RequestLogRow
        total = 0
        while True:
            doomed = (
                select(row.id)
                .where(row.created_at < cutoff)
                .limit(self._batch)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            async with self._sessions.begin() as session:
                result = await session.execute(delete(row).where(row.id.in_(doomed)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
            total += deleted
            if deleted < self._batch:
                return total

    async def expire_handovers(self) -> int:
        """Delete the phone-call handovers past their expiry; returns how many."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(VoiceHandover).where(VoiceHandover.expires_at < self._clock())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def start(self) -> None:
        self._background.start()

    async def _run(self) -> None:
        while True:
            try:
                async with self._background.working():
                    deleted = await self.sweep_once()
                    expired = await self.expire_handovers()
            except Exception as exc:
                log.warning(
                    "request log sweep failed; will retry",
                    extra={"fields": {"error_type": type(exc).__name__}},
                )
            else:
                if deleted:
                    log.info("request log swept", extra={"fields": {"deleted": deleted}})
                if expired:
                    log.info("expired phone-call handovers deleted", extra={"fields": {"deleted": expired}})
            # Spread the sweeps of processes started together.
            await asyncio.sleep(self._interval * random.uniform(0.9, 1.1))

    async def aclose(self) -> None:
        await self._background.stop()
