"""`Database.read_sessions`: on PostgreSQL each statement is its own transaction (no BEGIN or
ROLLBACK round trips), and a connection goes back to the pool as the other sessions want it."""

from __future__ import annotations

from sqlalchemy import text

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
