"""Buffered batches on a SQLite file go through one writing thread: read back exactly as
SQLAlchemy writes them (on PostgreSQL the same writer keeps its session), all or nothing,
counted once when the flush is cancelled, closed with the engine."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from foundation import sqlite_writes
from foundation.buffered import BufferedRowWriter
from foundation.sqlite_files import file_of
from foundation.sqlite_writes import rows_per_statement, statement_sizes, values_repeated, writes_for
from server.db import Database
from tests.foundation.test_bulk_insert import _METADATA, VIA_PLAN, VIA_SQLALCHEMY, _Entry, _read, rows, tables

__all__ = ["tables"]  # the fixture, on both backends


def _writer(db: Database, *, keyed: bool = False) -> BufferedRowWriter[_Entry]:
    return BufferedRowWriter(db.sessions, name="test", flush_interval=3600, max_pending=100_000, keyed=keyed)


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'writes.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    try:
        yield db
    finally:
        await db.dispose()


def test_the_values_tuple_is_repeated_for_each_row() -> None:
    one = "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO NOTHING"
    assert (
        values_repeated(one, 2, 3)
        == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT (a) DO NOTHING"
    )
    assert (
        values_repeated("INSERT INTO t (a) VALUES (lower(?))", 1, 2)
        == "INSERT INTO t (a) VALUES (lower(?)), (lower(?))"
    )
    # Not plainly one row of the plan's parameters: left to executemany.
    assert values_repeated("INSERT INTO t (a) VALUES (?, ?)", 1, 2) is None
    assert values_repeated("INSERT INTO t (a, b) VALUES ('(', ?)", 1, 2) is None
    assert values_repeated("INSERT INTO t (a) VALUES (?", 1, 2) is None
    assert values_repeated("INSERT INTO t (a) SELECT ?", 1, 2) is None


@given(st.integers(0, 5000), st.sampled_from([1, 2, 64, 256]))
def test_statement_sizes_cover_the_rows_with_few_statements(total: int, largest: int) -> None:
    sizes = statement_sizes(total, largest)
    assert sum(sizes) == total
    assert all(0 < size <= largest for size in sizes)
    rest = [size for size in sizes if size != largest]
    assert len(rest) == len(set(rest)) and all(size & (size - 1) == 0 for size in rest)
    assert sizes == sorted(sizes, reverse=True)


def test_rows_per_statement_keep_within_the_drivers_limit() -> None:
    assert rows_per_statement(25, 250_000) == 256
    assert rows_per_statement(25, 999) == 32  # 39 rows would fit; the power of two below
    assert rows_per_statement(10, 999) == 64
    assert rows_per_statement(2_000, 999) == 1  # one row still goes through, as executemany would
    assert rows_per_statement(0, 999) == 256


async def test_rows_read_back_as_sqlalchemy_writes_them_on_both_backends(tables: Database) -> None:
    writer = _writer(tables)
    for values in rows(600):  # 256 + 256 + 64 + 16 + 8 rows a statement on SQLite
        writer.record(_Entry(values))
    async with tables.sessions.begin() as session:
        await session.execute(insert(VIA_SQLALCHEMY), rows(600))
    assert await writer.flush() == 600
    assert writer.pending == 0
    written = await _read(tables, VIA_PLAN)
    assert len(written) == 600
    assert written == await _read(tables, VIA_SQLALCHEMY)
    writes = writes_for(tables.engine)
    assert (writes is not None) == (tables.engine.dialect.name == "sqlite")


async def test_a_flush_on_a_file_is_one_job_on_the_writing_thread(sqlite_file: Database) -> None:
    writes = writes_for(sqlite_file.engine)
    assert writes is not None and writes is writes_for(sqlite_file.engine)
    threads: list[str] = []
    original = writes._write

    def spy(groups: Any) -> None:
        threads.append(threading.current_thread().name)
        original(groups)

    writes._write = spy  # type: ignore[method-assign]
    writer = _writer(sqlite_file)
    for values in rows(300):
        writer.record(_Entry(values))
    assert await writer.flush() == 300
    assert len(threads) == 1 and threads[0].startswith("sqlite-writes")
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == list(range(300))


async def test_a_failed_batch_writes_nothing_and_stays_buffered(sqlite_file: Database) -> None:
    writer = _writer(sqlite_file)
    for values in rows(3):
        writer.record(_Entry(values))
    await writer.flush()
    for values in [*rows(6)[3:], rows(1)[0]]:  # three new rows, then one already there
        writer.record(_Entry(values))
    with pytest.raises(sqlite3.IntegrityError):
        await writer.flush()
    assert writer.pending == 4
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == [0, 1, 2]  # rolled back as one
    writer._pending.pop()  # the duplicate; the same connection writes the rest
    assert await writer.flush() == 3
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == [0, 1, 2, 3, 4, 5]


async def test_a_keyed_writer_skips_rows_already_there(sqlite_file: Database) -> None:
    writer = _writer(sqlite_file, keyed=True)
    for values in rows(3):
        writer.record(_Entry(values))
    await writer.flush()
    for values in [*rows(5), *rows(5)[4:]]:  # the first three again, two more, one of them twice
        writer.record(_Entry(values))
    assert await writer.flush() == 6
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == [0, 1, 2, 3, 4]


async def _flush_cancelled_while_the_thread_writes(
    db: Database, writer: BufferedRowWriter[_Entry], *, by_deadline: bool = False
) -> asyncio.Task[int]:
    """A flush cancelled while its job runs on the writing thread (held there by `gate`), then
    let go: by `task.cancel()`, or by an `asyncio.timeout` around it that passes meanwhile."""
    writes = writes_for(db.engine)
    assert writes is not None
    loop = asyncio.get_running_loop()
    running = asyncio.Event()
    gate = threading.Event()
    original = writes._write

    def held(groups: Any) -> None:
        loop.call_soon_threadsafe(running.set)
        gate.wait()
        original(groups)

    deadlines: list[asyncio.Timeout] = []

    async def bounded() -> int:
        async with asyncio.timeout(None) as deadline:
            deadlines.append(deadline)
            return await writer.flush()

    writes._write = held  # type: ignore[method-assign]
    flush = asyncio.create_task(bounded())
    await running.wait()
    if by_deadline:
        # Past, so it fires before `passed`, due now: the loop runs timers in order of time.
        deadlines[0].reschedule(loop.time() - 1)
        passed = asyncio.Event()
        loop.call_at(loop.time(), passed.set)
        await passed.wait()
    else:
        flush.cancel()
    await asyncio.sleep(0)
    waited = not flush.done()  # for the job's outcome
    gate.set()
    assert waited
    return flush


async def test_a_cancelled_flush_counts_what_the_thread_committed(sqlite_file: Database) -> None:
    writer = _writer(sqlite_file)
    for values in rows(5):
        writer.record(_Entry(values))
    flush = await _flush_cancelled_while_the_thread_writes(sqlite_file, writer)
    with pytest.raises(asyncio.CancelledError):
        await flush
    assert writer.pending == 0  # written, so not written again by the next flush
    assert await writer.flush() == 0
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == [0, 1, 2, 3, 4]


async def test_a_cancelled_flush_keeps_what_the_thread_did_not_commit(sqlite_file: Database) -> None:
    writer = _writer(sqlite_file)
    for values in [*rows(2), rows(1)[0]]:  # the last one fails the batch
        writer.record(_Entry(values))
    flush = await _flush_cancelled_while_the_thread_writes(sqlite_file, writer)
    with pytest.raises(asyncio.CancelledError):
        await flush
    assert writer.pending == 3
    assert await _read(sqlite_file, VIA_PLAN) == []


async def test_a_flush_whose_deadline_passes_while_the_thread_commits_times_out(
    sqlite_file: Database,
) -> None:
    writer = _writer(sqlite_file)
    for values in rows(4):
        writer.record(_Entry(values))
    flush = await _flush_cancelled_while_the_thread_writes(sqlite_file, writer, by_deadline=True)
    with pytest.raises(TimeoutError):  # the caller's deadline, not a cancellation of its task
        await flush
    assert writer.pending == 0
    assert [r[1] for r in await _read(sqlite_file, VIA_PLAN)] == [0, 1, 2, 3]


def _connected(writes: sqlite_writes.SqliteWrites) -> bool:
    return writes._connection is not None


async def test_disposing_the_engine_closes_its_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'closed.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    writer = _writer(db)
    writer.record(_Entry(rows(1)[0]))
    await writer.flush()
    writes = writes_for(db.engine)
    assert writes is not None and _connected(writes)
    await db.dispose()
    assert not _connected(writes)
    assert writes._executor._shutdown
    # The engine stays usable after dispose, as SQLAlchemy's is: a new thread on first use.
    writer.record(_Entry(rows(2)[1]))
    assert await writer.flush() == 1
    again = writes_for(db.engine)
    assert again is not None and again is not writes
    await db.dispose()
    assert again._executor._shutdown


async def test_a_forked_process_makes_its_own(sqlite_file: Database) -> None:
    writes = writes_for(sqlite_file.engine)
    assert writes is not None
    writes.pid = -1  # as in a child: the parent's thread is not there
    mine = writes_for(sqlite_file.engine)
    assert mine is not None and mine is not writes and mine.path == writes.path
    writes.close()  # the test's own, in the one process there is


def test_the_file_a_url_opens() -> None:
    assert file_of(make_url("sqlite+aiosqlite:///var/patchbay.db")) == "var/patchbay.db"
    assert file_of(make_url("sqlite+aiosqlite:////srv/patchbay.db")) == "/srv/patchbay.db"
    for other in (
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///file:x.db?mode=ro&uri=true",
        "postgresql+asyncpg://postgres@127.0.0.1/patchbay",
    ):
        assert file_of(make_url(other)) is None, other


async def test_only_files_get_a_thread(tmp_path: Path) -> None:
    memory = Database("sqlite+aiosqlite:///:memory:")
    uri = Database(f"sqlite+aiosqlite:///file:{tmp_path / 'u.db'}?mode=rwc&uri=true")
    try:
        assert writes_for(memory.engine) is None
        assert writes_for(uri.engine) is None  # URI options the thread's connection would not honour
        assert writes_for(memory.sessions) is None  # not an engine
        assert writes_for(None) is None
    finally:
        await memory.dispose()
        await uri.dispose()
    assert sqlite_writes.ROWS_PER_STATEMENT == 256
