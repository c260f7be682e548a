"""`Database.read_sessions`: on PostgreSQL each statement is its own transaction (no BEGIN or
ROLLBACK round trips), and a connection goes back to the pool as the other sessions want it."""

from __future__ import annotations

from sqlalchemy import text

from foundation.db import connections_of
from server.db import Database


async def test_read_sessions_run_each_statement_on_its_own_on_postgres(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        # SQLite begins no transaction for a read: the read sessions are the ordinary ones.
        assert db.read_sessions.kw["bind"] is db.engine
        return
    async with db.read_sessions() as s:
        first = await s.scalar(text("SELECT txid_current()"))
        second = await s.scalar(text("SELECT txid_current()"))
    assert first != second
    for _ in range(3):  # whichever pooled connection comes next is back in a transaction
        async with db.sessions() as s:
            first = await s.scalar(text("SELECT txid_current()"))
            second = await s.scalar(text("SELECT txid_current()"))
        assert first == second


async def test_plain_read_connections_are_the_read_sessions_engine(db: Database) -> None:
    """`connections_of(db.read_sessions)` (the key cache's and the registry's loads): the same
    engine, so on PostgreSQL the same autocommit reads."""
    async with connections_of(db.read_sessions)() as conn:
        first = await conn.scalar(text("SELECT 1"))
        if db.engine.dialect.name == "postgresql":
            first = await conn.scalar(text("SELECT txid_current()"))
            assert first != await conn.scalar(text("SELECT txid_current()"))
    assert first
