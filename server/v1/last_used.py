"""When each server API key was last used, written behind the requests.

A request only notes the time in memory (`record`: synchronous, O(1)); a background task
writes what was noted every `interval` seconds, one UPDATE per key used since the last flush
however many requests it made, in one transaction. The UPDATE only ever moves
`last_used_at` forward, so replicas flushing in any order agree. What was noted since the
last flush is lost in a hard crash: the time is a hint for people, not an account.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.background import BackgroundTask
from foundation.db import utcnow
from server.tables import ApiKey

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 60.0
_MAX_PENDING = 100_000

_KEYS = ApiKey.__table__
assert isinstance(_KEYS, Table)
_UPDATE = (
    update(_KEYS)
    .where(
        _KEYS.c.id == bindparam("key_id"),
        or_(_KEYS.c.last_used_at.is_(None), _KEYS.c.last_used_at < bindparam("used_at")),
    )
    .values(last_used_at=bindparam("used_at"))
)
"""Core, not the ORM: one executemany for the whole batch, no objects loaded."""


class LastUsedWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval: float = FLUSH_INTERVAL,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._now = now
        self._pending: dict[str, datetime] = {}
        self._background = BackgroundTask("api-key-last-used", self._run)
        self.updates = 0
        """UPDATE statements issued so far, one per key per flush (tests count them)."""

    def record(self, key_id: str, at: datetime | None = None) -> None:
        """Note that `key_id` was used (now, or `at`)."""
        at = at or self._now()
        seen = self._pending.get(key_id)
        if seen is None and len(self._pending) >= _MAX_PENDING:
            return  # a hint, not an account: past this many distinct keys, wait for the flush
        if seen is None or at > seen:
            self._pending[key_id] = at

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write the noted times; returns how many keys were written. On failure the times are
        kept (merged with any noted meanwhile) and the error propagates."""
        batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            async with self._sessions.begin() as session:
                rows = [{"key_id": key_id, "used_at": at} for key_id, at in batch.items()]
                await session.execute(_UPDATE, rows)
        except BaseException:
            for key_id, at in batch.items():
                self.record(key_id, at)
            raise
        self.updates += len(batch)
        return len(batch)

    def start(self) -> None:
        self._background.start()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with self._background.working():
                    await self.flush()
            except Exception as exc:
                log.warning(
                    "writing API keys' last-used times failed; will retry",
                    extra={"fields": {"pending": self.pending, "error_type": type(exc).__name__}},
                )

    async def aclose(self) -> None:
        """Stop the background task and write what is left."""
        await self._background.stop()
        await self.flush()
