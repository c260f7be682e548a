"""PostgreSQL connections the server closed: a pooled connection that sat idle is pinged and
replaced before anyone uses it; one used a moment ago is not pinged, and the request-path reads
run once more when their statement finds it dead (`server.db._ping_when_idle`,
`foundation.db.read_reconnecting`).

A backend is closed the way a restart closes it, with `pg_terminate_backend` from another
connection; the idle window is the engine's `ping_after_idle` (0: every reused connection is
"idle"; an hour: none is), so nothing here waits on the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from foundation.db import read_reconnecting
from server.db import make_engine

# PostgreSQL only: SQLite keeps no server connection to lose (and its pool never pings).
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url, isolation_level="AUTOCOMMIT")
    yield engine
    await engine.dispose()


async def _backend(conn: AsyncConnection) -> int:
    return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def _pooled_backend(engine: AsyncEngine) -> int:
    """Use one connection and give it back: the pool holds it, open."""
    async with engine.connect() as conn:
        return await _backend(conn)


async def _terminate(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_an_idle_connection_the_server_closed_is_replaced_unseen(
    db_url: str, admin: AsyncEngine
) -> None:
    engine = make_engine(db_url, ping_after_idle=0.0)
    try:
        closed = await _pooled_backend(engine)
        await _terminate(admin, closed)
        async with engine.connect() as conn:  # the ping finds it dead; the pool connects anew
            assert await _backend(conn) != closed
    finally:
        await engine.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(db_url: str, admin: AsyncEngine) -> None:
    engine = make_engine(db_url, ping_after_idle=3600.0)
    try:
        await _terminate(admin, await _pooled_backend(engine))
        with pytest.raises(DBAPIError) as raised:  # no ping: the statement is what finds it
            async with engine.connect() as conn:
                await _backend(conn)
        assert raised.value.connection_invalidated
        async with engine.connect() as conn:  # the pool was invalidated with it
            assert await _backend(conn)
    finally:
        await engine.dispose()


async def test_a_read_runs_once_more_on_a_fresh_connection(db_url: str, admin: AsyncEngine) -> None:
    engine = make_engine(db_url, ping_after_idle=3600.0)
    backends: list[int] = []

    async def read(conn: AsyncConnection) -> int:
        backends.append(await _backend(conn))  # the dead connection fails before appending
        return backends[-1]

    try:
        closed = await _pooled_backend(engine)
        await _terminate(admin, closed)
        served = await read_reconnecting(engine.connect, read)
        assert backends == [served] and served != closed
    finally:
        await engine.dispose()


async def test_a_read_that_fails_otherwise_is_not_run_again(db_url: str, admin: AsyncEngine) -> None:
    engine = make_engine(db_url, ping_after_idle=3600.0)
    tries = 0

    async def read(conn: AsyncConnection) -> None:
        nonlocal tries
        tries += 1
        await conn.execute(text("SELECT * FROM no_such_table"))

    try:
        with pytest.raises(DBAPIError):
            await read_reconnecting(engine.connect, read)
        assert tries == 1
    finally:
        await engine.dispose()
