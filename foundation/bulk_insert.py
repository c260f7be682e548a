"""Rows into one table as one driver-level `executemany`, the INSERT compiled once.

`session.execute(insert(table), rows)` compiles nothing twice (SQLAlchemy caches the statement),
but it still builds each row's parameters through the execution context: a dict per row, the
defaults looked up, each value through its column's bind processor, then the driver's tuple.
That is 4-8 µs a row of 25 columns, twice a chat request (its usage row and its request-log row),
on the path every request pays for (docs/performance.md, "Buffered rows as the driver's
parameters"). An `InsertPlan` does that work once per table, set of columns and dialect: the
compiled statement's text, its parameters' order, and each column's bind processor. A row then
becomes its tuple in one pass, and `executemany` gets exactly what SQLAlchemy would have passed.

A plan exists only for rows that set every column the statement binds: a column left unset with
a Python-side default would need the execution context to fill it in, so such rows keep
`session.execute` (`plan_for` returns None).

On SQLite a batch goes out as a few multi-row INSERTs (`VALUES (...), (...), ...`), not as one
`executemany`. The sqlite3 module runs in aiosqlite's thread and lets go of the GIL around each
step, so an `executemany` hands the GIL over twice per row; while the event loop is busy each
handover waits for it to drop the GIL. Under load, that was 20-30 µs of CPU per row and about
5 ms of wall time per row (docs/performance.md, "One statement per chunk of rows on SQLite").
A multi-row statement steps once. Chunks take sizes that are powers of two up to 256 rows (and
within the parameters SQLite lets a statement bind), so a table has at most nine statement texts
to prepare.
PostgreSQL keeps `executemany`: asyncpg pipelines it on the event loop, with no thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

_MAX_ROWS = 256
"""Rows per multi-row statement at most (a power of two)."""


class InsertPlan:
    """One INSERT for one set of columns, ready for the driver."""

    __slots__ = ("sql", "_columns", "_group", "_max_rows", "_texts")

    def __init__(
        self,
        sql: str,
        columns: Sequence[tuple[str, Callable[[Any], Any] | None]],
        *,
        max_variables: int = 0,
    ) -> None:
        self.sql = sql
        self._columns = columns
        """(column key, bind processor or None), in the order of the statement's parameters."""
        self._group = "(" + ", ".join(["?"] * len(columns)) + ")"
        self._max_rows = 0
        """Rows per multi-row statement at most (binding at most `max_variables` parameters);
        0: one `executemany`."""
        if max_variables and columns and sql.count(self._group) == 1:
            self._max_rows = _MAX_ROWS
            while self._max_rows * len(columns) > max_variables:
                self._max_rows //= 2
        self._texts: dict[int, str] = {1: sql}

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's parameters for one row, as SQLAlchemy would bind them."""
        return tuple(row[key] if process is None else process(row[key]) for key, process in self._columns)

    def chunks(self, rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Multi-row statements and their parameters covering `rows` (a `multi_row` plan)."""
        start, size = 0, self._max_rows
        while start < len(rows):
            while size > len(rows) - start:
                size //= 2
            params: list[Any] = []
            for row in rows[start : start + size]:
                params += self.parameters(row)
            yield self._text(size), tuple(params)
            start += size

    @property
    def multi_row(self) -> bool:
        return self._max_rows > 0

    def _text(self, size: int) -> str:
        text = self._texts.get(size)
        if text is None:
            text = self._texts[size] = self.sql.replace(self._group, ", ".join([self._group] * size))
        return text


def plan_for(statement: Insert, keys: frozenset[str], dialect: Dialect) -> InsertPlan | None:
    """The plan of `statement` for rows setting exactly `keys`, or None if the statement binds
    a column those rows leave to a Python-side default, or the driver binds by name."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    order = compiled.positiontup
    if order is None or not set(order) <= keys:
        return None
    columns = {column.key: column for column in statement.table.columns}
    processors = [(key, columns[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in order]
    limit = _sqlite_max_variables() if dialect.name == "sqlite" else 0
    return InsertPlan(compiled.string, processors, max_variables=limit)


@cache
def _sqlite_max_variables() -> int:
    """The parameters one statement may bind in the SQLite library Python links (32,766 since
    3.32; builds may set less)."""
    with closing(sqlite3.connect(":memory:")) as probe:
        return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


@lru_cache(maxsize=64)
def _shared_plan(statement: Insert, keys: frozenset[str], dialect: Dialect) -> InsertPlan | None:
    return plan_for(statement, keys, dialect)


async def insert_rows(session: AsyncSession, statement: Insert, rows: list[dict[str, Any]]) -> None:
    """`rows`, all setting the same columns, by their plan where there is one, else by
    `session.execute`. For a writer that keeps `statement` (a module's constant): its plan is
    made once per set of columns and dialect."""
    if not rows:
        return
    plan = _shared_plan(statement, frozenset(rows[0]), session.get_bind().dialect)
    if plan is None:
        await session.execute(statement, rows)
    else:
        await execute_plan(session, plan, rows)


async def execute_plan(session: AsyncSession, plan: InsertPlan, rows: list[dict[str, Any]]) -> None:
    """`rows` on the session's connection, in its transaction: a few multi-row statements on
    SQLite, one `executemany` elsewhere."""
    connection = await session.connection()
    if plan.multi_row:
        for text, params in plan.chunks(rows):
            await connection.exec_driver_sql(text, params)
    else:
        await connection.exec_driver_sql(plan.sql, [plan.parameters(row) for row in rows])
