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

(On SQLite, multi-row INSERTs instead of the `executemany` were tried and measured: fewer GIL
handovers with aiosqlite's thread, but more CPU per row through the server; docs/performance.md,
"Multi-row INSERTs on SQLite, measured and not kept". The buffered writers' batches on a SQLite
file now skip aiosqlite altogether: `foundation.sqlite_writes`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession


class InsertPlan:
    """One INSERT for one set of columns, ready for the driver."""

    __slots__ = ("sql", "_columns")

    def __init__(self, sql: str, columns: Sequence[tuple[str, Callable[[Any], Any] | None]]) -> None:
        self.sql = sql
        self._columns = columns
        """(column key, bind processor or None), in the order of the statement's parameters."""

    @property
    def width(self) -> int:
        """How many parameters one row binds."""
        return len(self._columns)

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's parameters for one row, as SQLAlchemy would bind them."""
        return tuple(row[key] if process is None else process(row[key]) for key, process in self._columns)


def plan_for(statement: Insert, keys: frozenset[str], dialect: Dialect) -> InsertPlan | None:
    """The plan of `statement` for rows setting exactly `keys`, or None if the statement binds
    a column those rows leave to a Python-side default, or the driver binds by name."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    order = compiled.positiontup
    if order is None or not set(order) <= keys:
        return None
    columns = {column.key: column for column in statement.table.columns}
    processors = [(key, columns[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in order]
    return InsertPlan(compiled.string, processors)


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
    """One `executemany` of `rows` on the session's connection, in its transaction."""
    connection = await session.connection()
    await connection.exec_driver_sql(plan.sql, [plan.parameters(row) for row in rows])
