"""A request log a test can follow: it hands over each entry it keeps, and writes only when told.

`install(services)` swaps it in for the running server's own (which is closed first). The
flush interval is an hour, so nothing reaches the database until the test calls `flush()`;
`sessions_opened` counts the database sessions the writer opened and `writes` the transactions
it wrote (on a SQLite file through its writing thread, `foundation.sqlite_writes`, not a
session), so a test can tell a request's entry was buffered, not written, while the request ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.activity.entry import RequestEntry
from server.activity.recorder import RequestLog
from server.services import Services


class CountingSessions:
    """The writer's session factory, counting what it opens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.opened = 0

    def begin(self) -> Any:
        self.opened += 1
        return self._sessions.begin()

    @property
    def kw(self) -> dict[str, Any]:
        """The factory's arguments: its bind tells the writer which database it writes to."""
        return self._sessions.kw


class RecordedLog(RequestLog):
    def __init__(self, services: Services) -> None:
        self.counting = CountingSessions(services.db.sessions)
        super().__init__(
            self.counting,  # type: ignore[arg-type]
            retention_days=services.settings.request_log_retention_days,
            registry=services.gateway.registry,
            flush_interval=3600,
        )
        self.kept: asyncio.Queue[RequestEntry] = asyncio.Queue()
        self.writes = 0

    @property
    def sessions_opened(self) -> int:
        return self.counting.opened

    async def _write(self, grouped: Any, committed: Any) -> None:
        self.writes += 1
        await super()._write(grouped, committed)

    def record(self, entry: RequestEntry) -> None:
        super().record(entry)
        self.kept.put_nowait(entry)

    async def next(self) -> RequestEntry:
        """The next entry kept. The timeout is a guard, not a wait: an entry is kept as its request ends."""
        async with asyncio.timeout(10):
            return await self.kept.get()


async def install(services: Services) -> RecordedLog:
    old = services.gateway.request_log
    await old.aclose()
    log = RecordedLog(services)
    log.start()
    services.gateway.request_log = log
    return log
