"""Rows written as the driver's parameters read back exactly as rows written by SQLAlchemy, on
both databases; rows that leave a column to its Python-side default keep SQLAlchemy's path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from foundation.buffered import BufferedRowWriter, RowValues, insert_new
from foundation.bulk_insert import _shared_plan, execute_plan, insert_rows, plan_for
from foundation.db import UTCDateTime
from server.db import Database

_METADATA = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        _METADATA,
        Column("id", String(32), primary_key=True),
        Column("seq", Integer, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("details", JSON),
        Column("amount", BigInteger, nullable=False),
        Column("ratio", Float, nullable=False),
        Column("flag", Boolean, nullable=False),
        Column("note", Text),
        Column("status", String(16), default="ok"),
    )


VIA_PLAN = _table("bulk_via_plan")
VIA_SQLALCHEMY = _table("bulk_via_sqlalchemy")

WHEN = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def rows(n: int = 6) -> list[dict[str, Any]]:
    details: list[Any] = [
        {"a": 1, "b": [1, 2, {"c": None}]},
        None,
        {"text": "été 🎉", "quote": "\"'\\"},
        [],
        {"big": 2**53 + 1},
        "just a string",
    ]
    return [
        {
            "id": f"row_{i}",
            "seq": i,
            # another zone: the column stores it as UTC either way
            "created_at": (WHEN + timedelta(microseconds=i)).astimezone(UTC if i % 2 else PLUS_TWO),
            "details": details[i % len(details)],
            "amount": 10**15 + i,
            "ratio": 0.1 * i,
            "flag": bool(i % 2),
            "note": None if i % 3 == 0 else f"note {i}",
            "status": "ok" if i % 2 else "error",
        }
        for i in range(n)
    ]


@pytest.fixture
async def tables(db: Database) -> Database:
    async with db.engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    return db


async def _read(db: Database, table: Table) -> list[tuple[Any, ...]]:
    async with db.session() as session:
        result = await session.execute(select(table).order_by(table.c.seq))
        return [tuple(row) for row in result]


async def test_rows_read_back_as_sqlalchemy_writes_them(tables: Database) -> None:
    async with tables.sessions.begin() as session:
        await session.execute(insert(VIA_SQLALCHEMY), rows())
        plan = plan_for(insert(VIA_PLAN), frozenset(rows()[0]), session.get_bind().dialect)
        assert plan is not None
        await execute_plan(session, plan, rows())
    written = await _read(tables, VIA_PLAN)
    assert written == await _read(tables, VIA_SQLALCHEMY)
    assert len(written) == 6
    assert written[0][2] == WHEN  # aware, UTC, to the microsecond
    # JSON None: what SQLAlchemy binds for it (its JSON null), on both paths alike
    assert written[1][3] == (await _read(tables, VIA_SQLALCHEMY))[1][3]


async def test_a_keyed_plan_skips_rows_already_there(tables: Database) -> None:
    async with tables.sessions.begin() as session:
        statement = insert_new(session, VIA_PLAN)
        plan = plan_for(statement, frozenset(rows()[0]), session.get_bind().dialect)
        assert plan is not None
        await execute_plan(session, plan, rows(3))
    async with tables.sessions.begin() as session:
        await execute_plan(session, plan, rows(5))  # the first three again, and two more
    assert [r[1] for r in await _read(tables, VIA_PLAN)] == [0, 1, 2, 3, 4]
    async with tables.sessions.begin() as session:
        # A row twice in one batch: written once.
        await execute_plan(session, plan, [*rows(7)[5:], *rows(7)[5:]])
    assert [r[1] for r in await _read(tables, VIA_PLAN)] == [0, 1, 2, 3, 4, 5, 6]


def test_no_plan_for_rows_that_leave_a_default_to_sqlalchemy() -> None:
    from sqlalchemy.dialects.postgresql import asyncpg, psycopg
    from sqlalchemy.dialects.sqlite import aiosqlite

    keys = frozenset(rows()[0])
    for dialect in (aiosqlite.dialect(), asyncpg.dialect()):
        assert plan_for(insert(VIA_PLAN), keys - {"status"}, dialect) is None
        assert plan_for(insert(VIA_PLAN), keys, dialect) is not None
    # A driver that binds by name gets no plan either (Patchbay's drivers bind by position).
    assert plan_for(insert(VIA_PLAN), keys, psycopg.dialect()) is None


class _Entry:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def row_values(self) -> RowValues:
        return VIA_PLAN, self.values

    def to_row(self) -> Any:  # pragma: no cover - row_values is always there
        raise AssertionError


async def test_the_writer_mixes_planned_and_defaulted_rows(tables: Database) -> None:
    writer: BufferedRowWriter[_Entry] = BufferedRowWriter(tables.sessions, name="test")
    for i, values in enumerate(rows()):
        if i % 2:
            values = {k: v for k, v in values.items() if k != "status"}  # left to the default
        writer.record(_Entry(values))
    assert await writer.flush() == 6
    written = await _read(tables, VIA_PLAN)
    assert [(r[1], r[-1]) for r in written] == [
        (0, "error"),
        (1, "ok"),
        (2, "error"),
        (3, "ok"),
        (4, "error"),
        (5, "ok"),
    ]
    # One plan for the full rows, none for the ones that need a default; both groups were written.
    assert sorted(plan is not None for plan in writer._plans.values()) == [False, True]


_INSERT = insert(VIA_PLAN)


async def test_insert_rows_keeps_one_plan_per_statement_and_columns(tables: Database) -> None:
    defaulted = [{k: v for k, v in row.items() if k != "status"} for row in rows(8)[6:]]
    async with tables.sessions.begin() as session:
        await session.execute(insert(VIA_SQLALCHEMY), rows(6))
        await insert_rows(session, _INSERT, rows(6)[:3])
        await insert_rows(session, _INSERT, rows(6)[3:])
        await insert_rows(session, _INSERT, [])  # nothing, not a row of defaults
        await insert_rows(session, _INSERT, defaulted)  # no plan: SQLAlchemy fills the default
        dialect = session.get_bind().dialect
    written = await _read(tables, VIA_PLAN)
    assert written[:6] == await _read(tables, VIA_SQLALCHEMY)
    assert [(r[1], r[-1]) for r in written[6:]] == [(6, "ok"), (7, "ok")]
    info = _shared_plan.cache_info()
    assert _shared_plan(_INSERT, frozenset(rows()[0]), dialect) is not None
    assert _shared_plan.cache_info().hits == info.hits + 1  # made on the first call, then reused
