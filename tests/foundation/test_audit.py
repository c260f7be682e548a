"""The buffered audit writer over a real database: batches, wake-ups, close, drops and retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from foundation.audit import AuditEntry, AuditEvent, BufferedAuditWriter
from server.db import Database


def entry(i: int, action: str = "secret.decrypt") -> AuditEntry:
    return AuditEntry(
        org_id="org_a",
        actor="system",
        action=action,
        target_type="connection",
        target_id=f"conn_{i}",
        details={"purpose": "test"},
    )


async def _rows(db: Database) -> list[AuditEvent]:
    async with db.session() as s:
        return list((await s.scalars(select(AuditEvent).order_by(AuditEvent.target_id))).all())


async def test_every_entry_is_its_own_row(db: Database) -> None:
    # The generic writer merges nothing, not even identical decrypts (that is the vault's rule).
    writer = BufferedAuditWriter(db.sessions)
    for _ in range(3):
        writer.record(entry(1))
    writer.record(entry(2, action="connection.update"))
    assert writer.pending == 4 and await _rows(db) == []
    assert await writer.flush() == 4
    rows = await _rows(db)
    assert [(r.target_id, r.action) for r in rows] == [("conn_1", "secret.decrypt")] * 3 + [
        ("conn_2", "connection.update")
    ]
    assert all(r.details == {"purpose": "test"} for r in rows)
    assert await writer.flush() == 0


async def test_a_full_batch_wakes_the_background_task(db: Database) -> None:
    flushed = asyncio.Event()
    counts: list[int] = []

    def on_flush(n: int) -> None:
        counts.append(n)
        flushed.set()

    # A flush interval far longer than any test: only the batch-size wake-up can flush.
    writer = BufferedAuditWriter(db.sessions, flush_interval=3600, batch_size=5, on_flush=on_flush)
    writer.start()
    try:
        for i in range(5):
            writer.record(entry(i))
        await asyncio.wait_for(flushed.wait(), timeout=10)
        assert counts == [5]
        assert len(await _rows(db)) == 5
    finally:
        await writer.aclose()


async def test_close_writes_what_is_left(db: Database) -> None:
    writer = BufferedAuditWriter(db.sessions, flush_interval=3600)
    writer.start()
    writer.record(entry(1))
    await writer.aclose()
    assert writer.pending == 0
    assert len(await _rows(db)) == 1


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _buffer_metrics(buffer: str) -> tuple[float, float, float, float]:
    """Written, dropped, failed writes, pending: what `/metrics` shows of one buffer."""
    return (
        _metric("patchbay_buffered_entries_total", buffer=buffer, outcome="written"),
        _metric("patchbay_buffered_entries_total", buffer=buffer, outcome="dropped"),
        _metric("patchbay_buffered_write_failures_total", buffer=buffer),
        _metric("patchbay_buffered_entries_pending", buffer=buffer),
    )


async def test_failed_write_keeps_entries_and_full_buffer_counts_drops(tmp_path: object) -> None:
    unmigrated = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    name = "audit_drops_test"  # a name of its own: the counters are process-wide
    try:
        writer = BufferedAuditWriter(unmigrated.sessions, name=name, max_pending=3)
        for i in range(5):
            writer.record(entry(i))
        assert writer.pending == 3 and writer.dropped == 2
        assert _buffer_metrics(name) == (0, 2, 0, 0)
        try:
            await writer.flush()
        except Exception as exc:
            assert "audit_events" in str(exc)
        else:
            raise AssertionError("flush into a database without tables must fail")
        assert writer.pending == 3
        assert _buffer_metrics(name) == (0, 2, 1, 3)  # the failure counted, its entries pending
        await unmigrated.upgrade()
        assert await writer.flush() == 3
        assert _buffer_metrics(name) == (3, 2, 1, 0)
    finally:
        await unmigrated.dispose()


class _FailureSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if "will retry" in record.getMessage():
            self.loop.call_soon_threadsafe(self.seen.set)


@pytest.fixture
async def failure() -> AsyncIterator[_FailureSeen]:
    """Set once the buffered writer logs a failed write."""
    seen = _FailureSeen()
    writer_log = logging.getLogger("foundation.buffered")
    writer_log.addHandler(seen)
    try:
        yield seen
    finally:
        writer_log.removeHandler(seen)


async def test_the_background_task_retries_until_the_database_is_back(
    tmp_path: object, failure: _FailureSeen
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/later.db")
    flushed = asyncio.Event()
    writer = BufferedAuditWriter(database.sessions, flush_interval=0.01, on_flush=lambda n: flushed.set())
    try:
        writer.start()
        writer.record(entry(1))
        writer.record(entry(2))
        await asyncio.wait_for(failure.seen.wait(), timeout=10)  # a write failed: no tables yet
        await database.upgrade()
        await asyncio.wait_for(flushed.wait(), timeout=10)
        assert writer.pending == 0
        assert len(await _rows(database)) == 2
    finally:
        await writer.aclose()
        await database.dispose()


async def test_a_failed_batch_is_retried_at_its_interval_not_by_each_new_entry(
    tmp_path: object, failure: _FailureSeen
) -> None:
    # Reaching a batch wakes the writer once; entries recorded past it, after that write failed,
    # must not wake it again (each would retry at once against a database that is down).
    unmigrated = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    writer = BufferedAuditWriter(unmigrated.sessions, flush_interval=3600, batch_size=2)
    try:
        writer.start()
        writer.record(entry(1))
        writer.record(entry(2))
        await asyncio.wait_for(failure.seen.wait(), timeout=10)
        assert writer.pending == 2  # back in the buffer, the writer waiting out its interval
        writer.record(entry(3))
        writer.record(entry(4))
        assert not writer._wake.is_set()
    finally:
        await writer._background.stop()
        await unmigrated.dispose()


async def test_the_audit_log_is_append_only_on_both_databases(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade()
        async with db.session() as s:
            s.add(
                AuditEvent(
                    org_id="org_a",
                    actor="operator",
                    action="org.create",
                    target_type="org",
                    target_id="org_a",
                )
            )
        for statement in ("UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with db.session() as s:
                    await s.execute(text(statement))
        async with db.session() as s:
            assert (await s.execute(text("SELECT actor FROM audit_events"))).scalars().all() == ["operator"]
    finally:
        await db.dispose()
