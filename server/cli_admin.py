"""`patchbay admin token`: the operator's admin token, and (`create`, `list`, `revoke`) org-scoped ones.

Exit codes follow `server.cli`: 0 printed; 2 usage error; 3 not ready (the admin API is
turned off with PATCHBAY_ADMIN_API=false, or the token file cannot be read or written).
Nothing here logs the token; it goes to stdout only, because printing it is the point.
"""

from __future__ import annotations

import click

from server.admin.token import AdminTokenError, load_admin_token, token_path
from server.cli_access import add_token_commands
from server.cli_common import EXIT_NOT_READY, emit, fail, json_option, load_settings


@click.group("admin")
def admin_group() -> None:
    """The admin API and web UI: how an operator signs in."""


@admin_group.group("token", invoke_without_command=True)
@click.option("--link", is_flag=True, help="Print a sign-in link for the web UI instead of the bare token.")
@click.option(
    "--base-url",
    metavar="URL",
    help="Where browsers reach this server, for --link (default http://PATCHBAY_HOST:PATCHBAY_PORT).",
)
@json_option
@click.pass_context
def token(ctx: click.Context, link: bool, base_url: str | None, as_json: bool) -> None:
    """Print the operator's admin token (PATCHBAY_ADMIN_TOKEN, else DATA_DIR/admin.token); with a
    subcommand, manage org-scoped admin tokens instead (`create --org ORG --role ROLE`, `list`, `revoke`).

    On the embedded default the server generates the token file on first start; this command
    generates it too if the server has not run yet. The sign-in link carries the token in the
    URL fragment (`/ui/#token=...`), which browsers never send to a server; the page moves it
    into this tab's session storage and removes it from the address bar at once.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    if not settings.admin_api:
        fail(
            "the admin API is turned off (PATCHBAY_ADMIN_API=false)",
            EXIT_NOT_READY,
            as_json=as_json,
            kind="admin_disabled",
        )
    try:
        admin = load_admin_token(settings)
    except (AdminTokenError, OSError) as exc:
        message = (
            str(exc)
            if isinstance(exc, AdminTokenError)
            else f"cannot write {token_path(settings)}: {type(exc).__name__}"
        )
        fail(message, EXIT_NOT_READY, as_json=as_json, kind="not_ready")
    assert admin is not None  # admin_api is on and creation was allowed
    value = admin.value.get_secret_value()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    origin = (base_url or f"http://{host}:{settings.port}").rstrip("/")
    sign_in = f"{origin}/ui/#token={value}"
    emit(as_json, {"token": value, "source": admin.source, "link": sign_in}, sign_in if link else value)


add_token_commands(token)
