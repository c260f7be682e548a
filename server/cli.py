"""The `patchbay` command line.

Exit codes: 0 success; 1 the operation failed (not found, conflict, bad value); 2 usage error;
3 the environment is not ready (database unreachable or not migrated, missing master key);
4 partial success (an import with rejected lines). Every command takes `--json`.

Each command group lives in its own `server/cli_*.py` and is imported only when it runs (or its
`--help` is asked for): the groups import the server's database, routing and provider code, about
two seconds in all, which `patchbay --help` and a command of another group need not wait for.
"""

from __future__ import annotations

import asyncio
import importlib

import click

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, attribute, the command's short help, as `patchbay --help` lists it)
    "admin": ("server.cli_admin", "admin_group", "The admin API and web UI: how an operator signs in."),
    "agent": (
        "server.cli_agents",
        "agent",
        "Agents: per-agent model defaults, fallback chains and voice settings.",
    ),
    "apikey": ("server.cli_apikeys", "apikey_group", "Server-issued API keys for the /v1 API and realtime."),
    "audit": (
        "server.cli_access",
        "audit",
        "An org's audit log, newest first: who did what, with which credential, from where.",
    ),
    "billing": (
        "server.cli_payments",
        "billing_group",
        'Payments through Stripe (docs/billing.md, "Stripe").',
    ),
    "config": (
        "server.cli_config",
        "config_group",
        "An org's configuration history and rollback (docs/operations.md#configuration-history).",
    ),
    "conformance": (
        "server.cli_conformance",
        "conformance_group",
        "Conformance: measure models, read results, override gates.",
    ),
    "connection": (
        "server.cli_connections",
        "connection",
        "AI Connections (auth profiles `provider:name`) of an org (`--org`) or of the platform (`--platform`).",
    ),
    "credits": (
        "server.cli_billing",
        "credits_group",
        "An org's credits: grant them, see the balance (the ledger is `patchbay ledger`).",
    ),
    "db": ("server.cli_db", "db", "Database migrations."),
    "flags": (
        "server.cli_flags",
        "flags_group",
        "Feature flags per org: canary orgs, percentage rollout and a global kill switch.",
    ),
    "import": ("server.cli_import", "import_group", "Import configuration from other systems."),
    "ledger": (
        "server.cli_billing",
        "ledger",
        "An org's ledger entries since a time, oldest first: grants, holds, settlements, releases.",
    ),
    "migrate": ("server.cli_migrate", "migrate", "Import data from earlier systems."),
    "org": ("server.cli_org", "org", "Organisations."),
    "requests": (
        "server.cli_activity",
        "requests",
        "An org's recent requests, newest first: who, which model, how it was routed, how it ended.",
    ),
    "usage": (
        "server.cli_org",
        "usage",
        "What an org's segments consumed (tokens, audio seconds, characters) and cost, by where the cost lands.",
    ),
    "user": ("server.cli_access", "user_group", "People who sign in to the web UI: invites and memberships."),
    "vault": (
        "server.cli_vault",
        "vault_group",
        "The credential vault: which master key versions hold secrets, and key rotation.",
    ),
}
"""The lazily imported commands. tests/server/test_cli_lazy.py keeps each short help equal to the
command's own (its docstring's first sentence)."""


class LazyGroup(click.Group):
    """A group whose `COMMANDS` are imported when one of them is looked up (to run it, or for its
    own help); the group's help lists them from the table, importing none."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                short = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
            else:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                short = command.get_short_help_str(limit)
            rows.append((name, short))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="patchbay")
def cli() -> None:
    """Patchbay: bring-your-own-key AI server for text, vision and real-time voice agents."""


@cli.command()
@click.option("--host", help="Bind address (default PATCHBAY_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default PATCHBAY_PORT or 8080).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port (default PATCHBAY_WORKERS or 1; one per core for voice load).",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Apply migrations and run the server in the foreground."""
    from server import serve as serving
    from server.cli_common import EXIT_NOT_READY, fail, load_settings
    from server.logs import configure_logging
    from server.replicas import replica_problems
    from server.services import Services, StartupError

    settings = load_settings(host=host, port=port, workers=workers)
    configure_logging(settings.log_level)
    problems = replica_problems(settings)
    if problems:
        fail("refusing to start as one of several replicas:\n- " + "\n- ".join(problems), EXIT_NOT_READY)

    async def preflight() -> None:
        # Fail here, with a clear message and exit code, rather than inside the ASGI lifespan
        # (of every worker). A master key file generated here is the one the workers read.
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
    serving.run(settings)


def configure_cli_logging() -> None:
    """Log like the server: JSON lines on stderr, so stdout stays clean for `--json` output.

    The level is PATCHBAY_LOG_LEVEL. With settings that do not validate this falls back to
    INFO instead of failing, so `--help` still works and the command reports the bad setting.
    """
    from pydantic import ValidationError

    from server.logs import configure_logging
    from server.settings import Settings

    try:
        level: str = Settings().log_level
    except ValidationError:
        level = "INFO"
    configure_logging(level)


def main() -> None:
    """The console script. Logging is configured here, once for every command, and not in the
    click group, so callers that invoke `cli` in process (tests) keep their own logging."""
    configure_cli_logging()
    cli(prog_name="patchbay")
