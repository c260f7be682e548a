"""The `patchbay` command line.

Exit codes: 0 success; 1 the operation failed (not found, conflict, bad value); 2 usage error;
3 the environment is not ready (database unreachable or not migrated, missing master key);
4 partial success (an import with rejected lines). Every command takes `--json`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tiers import Tier
from server import accounts
from server.db import Database, head_revision
from server.settings import Settings

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_NOT_READY = 3
EXIT_PARTIAL = 4


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def emit(as_json: bool, payload: Any, text: str) -> None:
    click.echo(json.dumps(_jsonable(payload), indent=2, sort_keys=True) if as_json else text)


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
            fail(f"cannot reach the database: {type(exc).__name__}", EXIT_NOT_READY, as_json=as_json, kind="not_ready")
        expected = head_revision()
        if current != expected:
            fail(
                f"the database is at migration {current or 'none'}, expected {expected}: run `patchbay db upgrade`",
                EXIT_NOT_READY,
                as_json=as_json,
                kind="not_ready",
            )
        return await fn(db)
    finally:
        await db.dispose()


def run_with_database(fn: Callable[[Database], Awaitable[T]], *, as_json: bool, settings: Settings | None = None) -> T:
    """Run `fn` against a migrated database; typed account errors become exit code 1."""
    try:
        return asyncio.run(_with_database(settings or load_settings(), fn, as_json=as_json))
    except accounts.AccountError as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)


def run_in_session(fn: Callable[[AsyncSession], Awaitable[T]], *, as_json: bool) -> T:
    """Run `fn` in one unit of work (committed on success)."""

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            return await fn(session)

    return run_with_database(in_session, as_json=as_json)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="patchbay")
def cli() -> None:
    """Patchbay: bring-your-own-key AI server for text, vision and real-time voice agents."""


@cli.command()
@click.option("--host", help="Bind address (default PATCHBAY_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default PATCHBAY_PORT or 8080).")
def serve(host: str | None, port: int | None) -> None:
    """Apply migrations and run the server in the foreground."""
    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.services import Services, StartupError

    settings = load_settings(host=host, port=port)
    configure_logging(settings.log_level)

    async def preflight() -> None:
        # Fail here, with a clear message and exit code, rather than inside the ASGI lifespan.
        services = Services.build(settings)
        try:
            await services.db.upgrade()
            await services.start()
        finally:
            await services.aclose()

    try:
        asyncio.run(preflight())
    except StartupError as exc:
        fail(f"refusing to start: {exc}", EXIT_NOT_READY)
    except OSError as exc:
        fail(f"refusing to start: cannot reach the database ({type(exc).__name__})", EXIT_NOT_READY)
    app = create_app(settings, migrate=False)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target migration revision.")
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = load_settings()

    async def run() -> tuple[str | None, str | None]:
        database = Database(settings.resolved_database_url)
        try:
            before = await database.current_revision()
            await database.upgrade(revision)
            return before, await database.current_revision()
        finally:
            await database.dispose()

    try:
        before, after = asyncio.run(run())
    except OSError as exc:
        fail(f"cannot reach the database: {exc.__class__.__name__}", EXIT_NOT_READY, as_json=as_json, kind="not_ready")
    text = f"database already at {after}" if before == after else f"migrated {before or 'empty database'} -> {after}"
    emit(as_json, {"from": before, "to": after, "changed": before != after}, text)


@db.command("current")
@json_option
def db_current(as_json: bool) -> None:
    """Show the database's migration revision and the newest one."""
    settings = load_settings()

    async def run() -> str | None:
        database = Database(settings.resolved_database_url)
        try:
            return await database.current_revision()
        finally:
            await database.dispose()

    current, head = asyncio.run(run()), head_revision()
    emit(as_json, {"current": current, "head": head, "up_to_date": current == head}, f"current {current}, head {head}")


@cli.group()
def org() -> None:
    """Organisations."""


@org.command("create")
@click.argument("name")
@click.option("--tier", type=click.Choice([t.value for t in Tier]), default=Tier.FREE.value, show_default=True)
@json_option
def org_create(name: str, tier: str, as_json: bool) -> None:
    """Create an org and print its id."""
    info = run_in_session(lambda s: accounts.create_org(s, name, Tier(tier), actor="cli"), as_json=as_json)
    emit(as_json, info, info.id)


@org.command("list")
@json_option
def org_list(as_json: bool) -> None:
    """List orgs."""
    orgs = run_in_session(accounts.list_orgs, as_json=as_json)
    emit(as_json, orgs, "\n".join(f"{o.id}\t{o.tier}\t{o.name}" for o in orgs) or "no orgs")


@cli.group()
def apikey() -> None:
    """Server-issued API keys for the /v1 API."""


@apikey.command("create")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option("--agent", help="Bind the key to this agent.")
@click.option("--name", help="A label for the key.")
@json_option
def apikey_create(org_ref: str, agent: str | None, name: str | None, as_json: bool) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    issued = run_in_session(
        lambda s: accounts.create_api_key(s, org_ref, agent=agent, name=name, actor="cli"), as_json=as_json
    )
    emit(as_json, {**_jsonable(issued.info), "key": issued.key}, issued.key)


@apikey.command("list")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@json_option
def apikey_list(org_ref: str, as_json: bool) -> None:
    """List an org's API keys (prefixes only)."""
    keys = run_in_session(lambda s: accounts.list_api_keys(s, org_ref), as_json=as_json)
    lines = [f"{k.id}\t{k.prefix}…\t{'revoked' if k.revoked_at else 'active'}\t{k.agent or '-'}" for k in keys]
    emit(as_json, keys, "\n".join(lines) or "no keys")


@apikey.command("revoke")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.argument("key_id")
@json_option
def apikey_revoke(org_ref: str, key_id: str, as_json: bool) -> None:
    """Revoke an API key; requests with it fail from now on."""
    info = run_in_session(lambda s: accounts.revoke_api_key(s, org_ref, key_id, actor="cli"), as_json=as_json)
    emit(as_json, info, f"revoked {info.id}")


def _register_optional_groups() -> None:
    from server.cli_migrate import migrate
    from server.cli_routing import agent, connection

    cli.add_command(migrate)
    cli.add_command(connection)
    cli.add_command(agent)


_register_optional_groups()


def main() -> None:
    cli(prog_name="patchbay")
