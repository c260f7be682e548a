"""Decrypt audits without a database round-trip on the request path.

`VaultCredential.reveal` runs while an adapter builds a request; it must not wait on a write.
It hands an `AuditEntry` to an `AuditSink`, whose `record` is synchronous and O(1).
`BufferedAuditWriter` keeps entries in memory and one background task writes them in batches:
every `flush_interval` seconds, sooner when `batch_size` entries are waiting, and on close.

Trade-off (documented in docs/security.md): entries recorded in the last flush interval
before a hard crash are lost, and while the database is unreachable at most `max_pending`
entries are kept (the rest are counted as dropped and logged by count). Entries never hold a
secret: only org, actor, action, target and a purpose string.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from providers.db import utcnow
from providers.tables import AuditEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    org_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: Mapping[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_row(self) -> AuditEvent:
        return AuditEvent(
            org_id=self.org_id,
            actor=self.actor,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            details=dict(self.details),
            created_at=self.at,
        )


class AuditSink(Protocol):
    def record(self, entry: AuditEntry) -> None:
        """Accept an entry without blocking; persistence may happen later."""
        ...


class MemoryAudit:
    """Keeps entries in a list: for tests and for CLI commands that decrypt nothing."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BufferedAuditWriter:
    """Buffers entries in memory and writes them to `audit_events` from one background task."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._on_flush = on_flush
        self._pending: collections.deque[AuditEntry] = collections.deque()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, entry: AuditEntry) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "audit buffer full; dropping decrypt audit entries",
                    extra={"fields": {"dropped": self.dropped}},
                )
            return
        self._pending.append(entry)
        if len(self._pending) >= self._batch_size:
            self._wake_flusher()

    def _wake_flusher(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def flush(self) -> int:
        """Write everything buffered so far in one transaction; returns how many entries were written.

        On failure the entries go back to the front of the buffer and the error propagates.
        """
        async with self._flush_lock:
            batch: list[AuditEntry] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return 0
            try:
                async with self._sessions.begin() as session:
                    session.add_all([e.to_row() for e in batch])
            except BaseException:
                self._pending.extendleft(reversed(batch))
                raise
        if self._on_flush is not None:
            self._on_flush(len(batch))
        return len(batch)

    def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="vault-audit-writer")

    async def _run(self) -> None:
        failing = False
        while True:
            if failing:
                # While the database is down, retry once per interval rather than on every full batch.
                await asyncio.sleep(self._interval)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                failing = False
            except Exception as exc:
                failing = True
                log.warning(
                    "writing decrypt audit entries failed; will retry",
                    extra={"fields": {"pending": len(self._pending), "error_type": type(exc).__name__}},
                )

    async def aclose(self) -> None:
        """Stop the background task and write what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
