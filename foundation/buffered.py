"""A write-behind buffer for append-only rows (audit events, usage records).

Request paths must not wait on a database write, so they hand an entry to `record`, which is
synchronous and O(1). One background task writes the buffer in batches: every
`flush_interval` seconds, sooner once `batch_size` entries wait, and on close. If the
database is unreachable, entries stay buffered up to `max_pending`; beyond that they are
dropped and counted (and logged by count, never by content). Written, dropped and pending
entries and failed writes are in `/metrics` by the writer's name (`foundation.metrics`).
Entries recorded in the last flush interval before a hard crash are lost: that is the price of
keeping writes off the request path, and the reason nothing that must never be lost goes
through here unless its writer also journals it (usage rows: `billing.usage_journal`).

A batch is written as one Core `INSERT ... executemany` per table, not through the ORM unit of
work (which cost a quarter of the gateway's throughput on SQLite), and at the driver's level
where it can (`foundation.bulk_insert`: the statement compiled once, each row straight to its
parameters). On a SQLite file the whole batch is instead one job on a thread of its own, with
multi-row INSERTs on its own connection (`foundation.sqlite_writes`): through aiosqlite each
step was a round trip with the event loop, and at saturation the buffers fell behind. An entry
may offer `row_values()` (its table and column values) to skip building an ORM object at all;
otherwise the values are taken from `to_row()`. Columns an entry leaves unset get their Core
defaults.
A writer made with `keyed=True` writes rows that carry their own primary key and may come twice
(a write whose commit was lost, a journal replayed: `billing.usage_journal`): a row whose key
is already there is skipped (`insert_new`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Insert, Table, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation import metrics
from foundation.background import BackgroundTask
from foundation.bulk_insert import InsertPlan, execute_plan, plan_for
from foundation.db import Base
from foundation.sqlite_writes import writes_for

log = logging.getLogger(__name__)


class RowEntry(Protocol):
    def to_row(self) -> Base: ...


RowValues = tuple[Table, dict[str, Any]]


def row_values(entry: RowEntry) -> RowValues:
    """The entry's table and the column values it sets (unset columns keep their defaults)."""
    fast = getattr(entry, "row_values", None)
    if fast is not None:
        values: RowValues = fast()
        return values
    row = entry.to_row()
    mapper = inspect(type(row))
    state = row.__dict__
    table = mapper.local_table
    assert isinstance(table, Table)
    return table, {attr.columns[0].key: state[attr.key] for attr in mapper.column_attrs if attr.key in state}


def insert_new(session: AsyncSession, table: Table) -> Insert:
    """`INSERT ... ON CONFLICT (primary key) DO NOTHING` on PostgreSQL and SQLite: a row already
    written is skipped, not an error."""
    return _keyed_insert(table, session.get_bind().dialect)


def _keyed_insert(table: Table, dialect: Dialect) -> Insert:
    module = postgresql if dialect.name == "postgresql" else sqlite
    statement: Insert = module.insert(table).on_conflict_do_nothing(
        index_elements=list(table.primary_key.columns)
    )
    return statement


Group = tuple[Table, frozenset[str]]


def _insert_batches(batch: list[RowValues]) -> dict[Group, list[dict[str, Any]]]:
    """Group rows by table and by the set of columns they set: one executemany each."""
    groups: dict[Group, list[dict[str, Any]]] = {}
    for table, values in batch:
        groups.setdefault((table, frozenset(values)), []).append(values)
    return groups


E = TypeVar("E", bound=RowEntry)


class BufferedRowWriter(Generic[E]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
        keyed: bool = False,
    ) -> None:
        self.name = name
        self._sessions = sessions
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._on_flush = on_flush
        self._keyed = keyed
        self._pending: collections.deque[E] = collections.deque()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background = BackgroundTask(f"buffered-writer:{name}", self._run)
        self._plans: dict[Group, InsertPlan | None] = {}
        """Each group's compiled INSERT (None: it goes through `session.execute`); a handful per
        writer, one per table and set of columns its entries set."""
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, entry: E) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            metrics.observe_buffer_drop(self.name)
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "write buffer full; dropping entries",
                    extra={"fields": {"buffer": self.name, "dropped": self.dropped}},
                )
            return
        self._pending.append(entry)
        # Once, as the buffer reaches a batch: entries recorded while that flush is on their way
        # wait for the next, and after a failed flush the retry keeps its interval.
        if len(self._pending) == self._batch_size:
            self._wake_flusher()

    def _wake_flusher(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
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
            return await self._write_pending()

    async def _write_pending(self) -> int:
        """`flush`, its lock held (a subclass's `flush` may do more under it)."""
        batch: list[E] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        written = False

        def committed() -> None:
            nonlocal written
            written = True

        try:
            await self._write(_insert_batches(self._rows(batch)), committed)
        except BaseException as exc:
            if written:  # committed, then the flush was cancelled: counted, the cancellation goes on
                self._count_written(len(batch))
                raise
            self._pending.extendleft(reversed(batch))
            if isinstance(exc, Exception):
                metrics.observe_buffer(self.name, failed=True, pending=len(self._pending))
            raise
        self._count_written(len(batch))
        return len(batch)

    def _count_written(self, count: int) -> None:
        metrics.observe_buffer(self.name, written=count, pending=len(self._pending))
        if self._on_flush is not None:
            self._on_flush(count)

    async def _write(self, grouped: dict[Group, list[dict[str, Any]]], committed: Callable[[], None]) -> None:
        """One transaction, `committed()` once it is: on a SQLite file as one job on its writing
        thread when every group has a plan (`foundation.sqlite_writes`), else through a session."""
        writes = writes_for(self._sessions.kw.get("bind"))
        if writes is not None:
            planned = [(self._plan(group, writes.dialect), rows) for group, rows in grouped.items()]
            ready = [(plan, rows) for plan, rows in planned if plan is not None]
            if len(ready) == len(planned):
                await writes.write(ready, committed)
                return
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect
            for group, rows in grouped.items():
                plan = self._plan(group, dialect)
                if plan is None:
                    await session.execute(self._statement(group[0], dialect), rows)
                else:
                    await execute_plan(session, plan, rows)
        committed()

    def _statement(self, table: Table, dialect: Dialect) -> Insert:
        return _keyed_insert(table, dialect) if self._keyed else insert(table)

    def _plan(self, group: Group, dialect: Dialect) -> InsertPlan | None:
        if group not in self._plans:
            table, keys = group
            self._plans[group] = plan_for(self._statement(table, dialect), keys, dialect)
        return self._plans[group]

    def _rows(self, batch: list[E]) -> list[RowValues]:
        """The rows to write for a drained batch; a subclass may merge entries here."""
        return [row_values(e) for e in batch]

    def start(self) -> None:
        if self._background.start():
            self._loop = asyncio.get_running_loop()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                async with self._background.working():
                    await self.flush()
            except Exception as exc:
                log.warning(
                    "writing buffered entries failed; will retry",
                    extra={
                        "fields": {
                            "buffer": self.name,
                            "pending": len(self._pending),
                            "error_type": type(exc).__name__,
                        }
                    },
                )

    async def aclose(self) -> None:
        """Stop the background task and write what is left."""
        await self._background.stop()
        await self.flush()
