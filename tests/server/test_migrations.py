"""Migrations and models agree, on every backend, and migrations run both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from server.db import Database, head_revision
from server.models import metadata


async def test_upgrade_matches_the_models_and_downgrades_cleanly(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
        await db.downgrade("base")
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        await db.upgrade()
        assert await db.current_revision() == head_revision()
    finally:
        await db.dispose()
