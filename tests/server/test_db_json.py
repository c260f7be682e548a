"""JSON columns are written and read by orjson (`server.db.make_engine`): every document the
stdlib encoder would store reads back as the same value, on both databases."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select

from server.db import Database, json_column_text

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_SCALARS = st.none() | st.booleans() | _INT64 | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text() | _INT64, inner, max_size=4),
    max_leaves=20,
)


@given(_DOCUMENTS)
def test_a_document_reads_back_as_the_stdlib_encoder_would_have_it(value: Any) -> None:
    # Integer keys become strings, tuples lists, non-ASCII text stays text: as with `json.dumps`.
    assert json.loads(json_column_text(value)) == json.loads(json.dumps(value))


async def test_json_columns_round_trip_on_each_database(db: Database) -> None:
    table = Table("json_round_trip", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    doc = {"chat": ["openai/gpt-4o-mini"], "limits": {"1": 2.5}, "name": "Zoë ✓", "none": None}
    async with db.engine.begin() as conn:
        await conn.run_sync(table.create)
        await conn.execute(insert(table), [{"id": 1, "doc": doc}, {"id": 2, "doc": {3: (1, 2)}}])
    async with db.engine.connect() as conn:
        rows = {row.id: row.doc for row in await conn.execute(select(table.c.id, table.c.doc))}
    assert rows == {1: doc, 2: {"3": [1, 2]}}
