"""Buffered batches into a SQLite file, each written as one job on a thread of its own.

Through aiosqlite, every step of a flush (BEGIN, each group's executemany, COMMIT) is a round
trip between the driver's thread and the event loop, and each side waits for the GIL the other
holds. With the loop saturated by requests, a one-row insert waited a median 182 ms, the
write-behind buffers fell behind and dropped rows (docs/performance.md, "Sustained saturation
on SQLite"). Here a whole flush is one hand-over: `SqliteWrites.write` gives the batch to one
thread with its own `sqlite3` connection (the server's pragmas), which takes the write lock up
front (`BEGIN IMMEDIATE`: the transaction never fails half-way upgrading a read lock), writes
each group as multi-row INSERTs and commits. One thread per file and process also queues the
writers (usage, request log, audits) behind each other instead of at the file's lock.

Only for database files: an in-memory database belongs to its one connection, so its writers
keep the engine's. The thread and its connection live as long as the engine: `writes_for`
makes them on first use and the engine's `dispose` closes them. A forked process makes its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from foundation.bulk_insert import InsertPlan
from foundation.sqlite_files import apply_pragmas, file_of

ROWS_PER_STATEMENT = 256
"""The most rows one INSERT carries (fewer when the driver's limit on parameters is lower)."""

PlannedRows = tuple[InsertPlan, list[dict[str, Any]]]


def values_repeated(sql: str, width: int, count: int) -> str | None:
    """`sql`, a one-row `INSERT ... VALUES (?, ...)` binding `width` parameters, as an INSERT of
    `count` rows; None when its VALUES tuple is not plainly that (it then runs as executemany)."""
    head, marker, tail = sql.partition(" VALUES (")
    if not marker:
        return None
    end = _closing(tail)
    if end is None:
        return None
    row = "(" + tail[:end] + ")"
    if row.count("?") != width or "'" in row:
        return None
    return head + " VALUES " + ", ".join([row] * count) + tail[end + 1 :]


def rows_per_statement(width: int, limit: int) -> int:
    """The most rows of `width` parameters one INSERT carries: a power of two, at most
    `ROWS_PER_STATEMENT`, within the driver's `limit` on parameters, at least one."""
    most = max(1, min(ROWS_PER_STATEMENT, limit // max(width, 1)))
    return 1 << (most.bit_length() - 1)


def _closing(text: str) -> int | None:
    """Where the parenthesis open before `text` closes."""
    depth = 1
    for index, character in enumerate(text):
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


def statement_sizes(total: int, largest: int) -> list[int]:
    """Rows per statement for `total` rows: `largest` while they last, then powers of two, so that
    a table needs at most a handful of different statements (each prepared once by the driver)."""
    sizes = [largest] * (total // largest)
    rest = total % largest
    bit = 1 << rest.bit_length()
    while rest:
        bit >>= 1
        if rest & bit:
            sizes.append(bit)
            rest -= bit
    return sizes


class SqliteWrites:
    """One thread and one connection writing whole batches into the SQLite file at `path`."""

    def __init__(self, path: str, dialect: Dialect) -> None:
        self.path = path
        self.dialect = dialect
        """The engine's: the plans' bind processors are its (JSON by its serializer)."""
        self.pid = os.getpid()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writes")
        self._connection: sqlite3.Connection | None = None  # the thread's only
        self._statements: dict[tuple[str, int], str | None] = {}
        self._largest: dict[int, int] = {}

    async def write(self, groups: Sequence[PlannedRows], committed: Callable[[], None]) -> None:
        """Every group's rows in one transaction; `committed()` is called once it is committed.

        The job cannot be taken back once the thread has it. When the caller is cancelled
        meanwhile, this waits for the job's outcome and calls `committed()` if it committed
        before passing the cancellation on: the caller counts those rows as written, not as
        rows to retry."""
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._write, groups)
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            while not job.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({job})
            if job.exception() is None:
                committed()
            raise
        committed()

    def _write(self, groups: Sequence[PlannedRows]) -> None:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            for plan, rows in groups:
                self._insert(connection, plan, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _insert(self, connection: sqlite3.Connection, plan: InsertPlan, rows: list[dict[str, Any]]) -> None:
        width = plan.width
        largest = self._largest.get(width)
        if largest is None:
            limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            largest = self._largest[width] = rows_per_statement(width, limit)
        values = [plan.parameters(row) for row in rows]
        start = 0
        for size in statement_sizes(len(values), largest):
            key = (plan.sql, size)
            if key not in self._statements:
                self._statements[key] = values_repeated(plan.sql, width, size)
            sql = self._statements[key]
            if sql is None:  # then for every size: its VALUES tuple is not one to repeat
                connection.executemany(plan.sql, values)
                return
            chunk = values[start : start + size]
            connection.execute(sql, list(itertools.chain.from_iterable(chunk)))
            start += size

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, cached_statements=64)
            apply_pragmas(connection)
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the connection once the job under way (if any) ends, and stop the thread."""
        self._executor.submit(self._disconnect)
        self._executor.shutdown(wait=True)


_OPEN: weakref.WeakKeyDictionary[Engine, SqliteWrites | None] = weakref.WeakKeyDictionary()
"""Each engine's writes (None: not a SQLite file), until the engine is disposed."""


def writes_for(bind: object) -> SqliteWrites | None:
    """The writes into the SQLite file `bind` (a session factory's bind) opens, or None when it
    is not an engine on a SQLite file."""
    if not isinstance(bind, AsyncEngine):
        return None
    engine = bind.sync_engine
    if engine in _OPEN:
        writes = _OPEN[engine]
        if writes is None or writes.pid == os.getpid():
            return writes
    path = file_of(engine.url)
    _OPEN[engine] = writes = SqliteWrites(path, engine.dialect) if path else None
    if writes is not None and not event.contains(engine, "engine_disposed", _close):
        event.listen(engine, "engine_disposed", _close)
    return writes


def _close(engine: Engine) -> None:
    writes = _OPEN.pop(engine, None)
    if writes is not None and writes.pid == os.getpid():
        writes.close()
