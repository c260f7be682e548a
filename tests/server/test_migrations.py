"""Migrations and models agree, on every backend, and migrations run both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from server.db import Database, alembic_config, head_revision
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


def _chain() -> list[str]:
    """Every revision from the newest down to the first (the chain is linear)."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [s.revision for s in scripts.walk_revisions("base", "heads")]


async def test_every_migration_is_reversible_one_step_at_a_time(db_url: str) -> None:
    """Each migration's downgrade runs on its own (head -> base one revision at a time) and the
    schema built again afterwards is the models' (release checklist, docs/release.md)."""
    chain = _chain()
    assert chain[0] == head_revision() and len(chain) == len(set(chain))
    db = Database(db_url)
    try:
        await db.upgrade()
        for below in [*chain[1:], None]:
            await db.downgrade("-1")
            assert await db.current_revision() == below
        await db.upgrade()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await db.dispose()
