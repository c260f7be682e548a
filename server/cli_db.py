"""`patchbay db`: apply schema migrations (`upgrade`), show where the database is (`current`), and
undo them down to a revision (`downgrade`, docs/operations.md#schema-rollback).

A downgrade drops the tables and columns the undone migrations added, with their data, so it
asks for `--yes`; without it the command lists the migrations it would undo and changes
nothing. Exit codes: 0 done (or nothing to do); 1 unknown revision, or `--yes` missing;
3 database unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from server.cli_common import EXIT_FAILED, EXIT_NOT_READY, emit, fail, json_option, load_settings
from server.db import Database, alembic_config, head_revision

T = TypeVar("T")


def on_database(work: Callable[[Database], Awaitable[T]], *, as_json: bool) -> T:
    """Run `work` on the configured database, migrated or not (disposed after); an unreachable
    database exits 3 with a message instead of a traceback."""
    settings = load_settings()

    async def run() -> T:
        database = Database(settings.resolved_database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except OSError as exc:
        fail(
            f"cannot reach the database: {exc.__class__.__name__}",
            EXIT_NOT_READY,
            as_json=as_json,
            kind="not_ready",
        )


@click.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target migration revision.")
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: the newest)."""

    async def run(database: Database) -> tuple[str | None, str | None]:
        before = await database.current_revision()
        await database.upgrade(revision)
        return before, await database.current_revision()

    before, after = on_database(run, as_json=as_json)
    text = (
        f"database already at {after}"
        if before == after
        else f"migrated {before or 'empty database'} -> {after}"
    )
    emit(as_json, {"from": before, "to": after, "changed": before != after}, text)


@db.command("current")
@json_option
def db_current(as_json: bool) -> None:
    """Show the database's migration revision and the newest one."""
    current, head = on_database(Database.current_revision, as_json=as_json), head_revision()
    emit(
        as_json,
        {"current": current, "head": head, "up_to_date": current == head},
        f"current {current}, head {head}",
    )


def revisions_between(current: str | None, target: str) -> list[str]:
    """The revisions a downgrade from `current` to `target` undoes, newest first (pure over
    the migration scripts). Raises ValueError for an unknown target or one above `current`."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if current is None:
        return []
    stop = None if target == "base" else target
    try:
        known = stop is None or scripts.get_revision(stop) is not None
    except (CommandError, RevisionError):
        known = False
    if not known:
        raise ValueError(f"unknown migration revision {target!r}")
    undone: list[str] = []
    for script in scripts.iterate_revisions(current, "base"):
        if script.revision == stop:
            return undone
        undone.append(script.revision)
    if stop is not None:
        raise ValueError(f"revision {target!r} is not below the database's revision {current}")
    return undone


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Really undo the migrations (their tables' data is dropped).")
@json_option
def db_downgrade(revision: str, yes: bool, as_json: bool) -> None:
    """Undo migrations down to REVISION (a revision id, or `base` for an empty database).

    Stop every server first and take a backup: the undone migrations' tables and columns are
    dropped with their data. Without --yes, print what would be undone and change nothing.
    """
    before = on_database(Database.current_revision, as_json=as_json)
    try:
        undone = revisions_between(before, revision)
    except ValueError as exc:
        fail(f"{exc}: `patchbay db current` shows where the database is", as_json=as_json)
    if not undone:
        emit(
            as_json,
            {"from": before, "to": before, "undone": [], "changed": False},
            f"database already at {before}",
        )
        return
    if not yes:
        fail(
            f"this would undo migrations {', '.join(undone)} and drop their data; "
            "back up the database, stop the servers, and run again with --yes",
            EXIT_FAILED,
            as_json=as_json,
            kind="confirmation_required",
        )

    async def run(database: Database) -> str | None:
        await database.downgrade(revision)
        return await database.current_revision()

    after = on_database(run, as_json=as_json)
    emit(
        as_json,
        {"from": before, "to": after, "undone": undone, "changed": True},
        f"downgraded {before} -> {after or 'empty database'} (undid {', '.join(undone)})",
    )
