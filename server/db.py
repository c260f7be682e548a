"""The database handle: one async engine, a session factory, and migrations.

SQLite (aiosqlite) is the embedded default and PostgreSQL (asyncpg) the production store;
both run the same Alembic migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from foundation.sqlite_files import apply_pragmas, file_of

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger("patchbay.db")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def create_private_file(path: Path) -> None:
    """Create the SQLite file 0600 (its directory 0700) before SQLite does: SQLite would make it
    0644, and its -wal and -shm files copy the database file's mode. An existing file is left alone."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only if it sat idle over `idle_seconds`.

    SQLAlchemy's `pool_pre_ping` pings at every checkout: a round trip that was a third of an
    org's first load on PostgreSQL (docs/performance.md, Many tenants). A connection used a
    moment ago is rarely dead; one that sat idle may have been closed by a restart, a failover
    or an idle timeout, and the ping finds that before any statement does (a dead one is
    replaced, the caller sees nothing). A restart within the idle window is found by the first
    statement instead: SQLAlchemy invalidates the pool, the request-path reads run once more
    (`foundation.db.read_reconnecting`) and the writers retry from their buffers."""
    dialect = engine.dialect

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise DisconnectionError() from exc  # the pool replaces it and checks out again
            raise

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


def json_column_text(value: Any) -> str:
    """JSON columns' text, by orjson: the same documents as the stdlib encoder writes for what the
    tables hold (integer keys become strings there too), at a fraction of the CPU."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, *, ping_after_idle: float = PING_AFTER_IDLE_SECONDS, **kwargs: Any) -> AsyncEngine:
    path = file_of(make_url(url))
    if path is not None:
        create_private_file(Path(path))
    # JSON columns are read on an org's first request (its settings, once per connection row)
    # and written behind every request (the request log's route): orjson both ways.
    kwargs = {"json_serializer": json_column_text, "json_deserializer": orjson.loads, **kwargs}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", apply_pragmas)
    else:
        _ping_when_idle(engine, ping_after_idle)
    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        # On SQLite a read begins no transaction anyway, and setting the mode on each checkout
        # would cost statements of its own.
        reads = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.read_sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            reads, expire_on_commit=False
        )
        """For reads on a request's path that need no transaction of their own (an org's or an
        API key's first load): on PostgreSQL in autocommit, without the BEGIN and ROLLBACK round
        trips; each statement sees what was committed when it started, as it does at READ
        COMMITTED anyway. Never for writes."""

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def current_revision(self) -> str | None:
        def read(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(read)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def upgrade(self, revision: str = "head") -> None:
        before = await self.current_revision()
        await self._run_alembic(lambda cfg: command.upgrade(cfg, revision))
        after = await self.current_revision()
        if before != after:
            log.info("database migrated", extra={"fields": {"from": before, "to": after}})

    async def downgrade(self, revision: str) -> None:
        await self._run_alembic(lambda cfg: command.downgrade(cfg, revision))

    async def _run_alembic(self, fn: Callable[[Config], None]) -> None:
        async with self.engine.begin() as conn:

            def run(sync_conn: Connection) -> None:
                cfg = alembic_config(self.url)
                cfg.attributes["connection"] = sync_conn
                fn(cfg)

            await conn.run_sync(run)

    async def dispose(self) -> None:
        await self.engine.dispose()


def upgrade_sync(url: str, revision: str = "head") -> None:
    """For the CLI: apply migrations and exit."""

    async def run() -> None:
        db = Database(url)
        try:
            await db.upgrade(revision)
        finally:
            await db.dispose()

    asyncio.run(run())
