"""What every `patchbay` command shares: JSON output, failures with exit codes, settings, database access.

Commands that touch connections or upstreams run over the composition root
(`run_with_services`), so they use the server's guarded upstream pool rather than one of their
own. A test substitutes parts by invoking the group with `obj=Overrides(...)`.

Exit codes: 0 success; 1 the operation failed (not found, conflict, bad value); 2 usage error;
3 the environment is not ready (database unreachable or not migrated, missing master key);
4 partial success (an import with rejected lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import Acting, acting
from foundation.errors import RequestError
from server.db import Database, head_revision
from server.settings import Settings

if TYPE_CHECKING:
    from server.services import Overrides, Services

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_NOT_READY = 3
EXIT_PARTIAL = 4


CLI_ACTING = Acting(actor="cli", credential="cli")


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit(as_json: bool, payload: Any, text: str) -> None:
    click.echo(json.dumps(jsonable(payload), indent=2, sort_keys=True) if as_json else text)


def fail(message: str, code: int = EXIT_FAILED, *, as_json: bool = False, kind: str = "error") -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        fail(f"invalid setting PATCHBAY_{field.upper()}: {first['msg']}", 2)


async def _with_database(settings: Settings, fn: Callable[[Database], Awaitable[T]], *, as_json: bool) -> T:
    db = Database(settings.resolved_database_url)
    try:
        try:
            current = await db.current_revision()
        except Exception as exc:
            fail(
                f"cannot reach the database: {type(exc).__name__}",
                EXIT_NOT_READY,
                as_json=as_json,
                kind="not_ready",
            )
        expected = head_revision()
        if current != expected:
            fail(
                f"the database is at migration {current or 'none'}, expected {expected}: run `patchbay db upgrade`",
                EXIT_NOT_READY,
                as_json=as_json,
                kind="not_ready",
            )
        # Every audit row a command writes says it came from the command line.
        with acting(CLI_ACTING):
            return await fn(db)
    finally:
        await db.dispose()


def run_with_database(
    fn: Callable[[Database], Awaitable[T]], *, as_json: bool, settings: Settings | None = None
) -> T:
    """Run `fn` against a migrated database; typed account errors become exit code 1."""
    try:
        return asyncio.run(_with_database(settings or load_settings(), fn, as_json=as_json))
    except RequestError as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)


def run_in_session(fn: Callable[[AsyncSession], Awaitable[T]], *, as_json: bool) -> T:
    """Run `fn` in one unit of work (committed on success)."""

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            return await fn(session)

    return run_with_database(in_session, as_json=as_json)


def cli_overrides() -> Overrides:
    """The `Overrides` a caller passed as click's context object (tests do); none in production."""
    from server.services import Overrides

    context = click.get_current_context(silent=True)
    found = context.find_object(Overrides) if context is not None else None
    return found if found is not None else Overrides()


def run_with_services(
    fn: Callable[[Services], Awaitable[T]], *, as_json: bool, settings: Settings | None = None
) -> T:
    """Run `fn` over the composition root on a migrated database; the audit and usage writers
    run for the duration, the server's background work (registry polling) does not."""
    from server.services import Services

    settings = settings or load_settings()
    overrides = cli_overrides()

    async def run(db: Database) -> T:
        services = Services.build(settings, db, overrides, admin_api=False)
        services.start_writers()
        try:
            return await fn(services)
        finally:
            await services.aclose()

    return run_with_database(run, as_json=as_json, settings=settings)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
