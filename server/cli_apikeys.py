"""`patchbay apikey`: create, list and revoke an org's server API keys.

A key is printed once, at creation (only its hash is stored); in text mode with a snippet for
the openai SDK pointed at this server. Exit codes are those of `server/cli.py`.
"""

from __future__ import annotations

from datetime import datetime

import click

from billing.money import format_usd
from server import accounts
from server.budgets import parse_cap
from server.cli_budgets import apikey_update
from server.cli_common import emit, json_option, jsonable, load_settings, run_in_session


@click.group("apikey")
def apikey_group() -> None:
    """Server-issued API keys for the /v1 API and realtime."""


def _models(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [m.strip() for m in text.split(",") if m.strip()]


def base_url() -> str:
    """Where clients reach this server's /v1 API: PATCHBAY_PUBLIC_URL, else the bind address."""
    settings = load_settings()
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/v1"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/v1"


def sdk_snippet(key: str, url: str) -> str:
    return "\n".join(
        [
            "Shown once: store it now. With the openai SDK:",
            "",
            "    from openai import OpenAI",
            f'    client = OpenAI(base_url="{url}", api_key="{key}")',
        ]
    )


@apikey_group.command("create")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option("--name", required=True, help="A name unique among the org's live keys (1-128 characters).")
@click.option("--agent", help="Bind the key to this agent.")
@click.option(
    "--models", help="Comma-separated models the key may ask for (refs, aliases, agent:NAME, default)."
)
@click.option("--expires", help="When the key stops working: an ISO 8601 time or a span from now (12h, 30d).")
@click.option(
    "--spend-limit",
    metavar="USD",
    help="What requests with the key may be charged per calendar month (UTC), exact USD; default: no limit.",
)
@json_option
def apikey_create(
    org_ref: str,
    name: str,
    agent: str | None,
    models: str | None,
    expires: str | None,
    spend_limit: str | None,
    as_json: bool,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    issued = run_in_session(
        lambda s: accounts.create_api_key(
            s,
            org_ref,
            name=name,
            agent=agent,
            models=_models(models),
            expires=expires,
            spend_limit=parse_cap(spend_limit, param="spend_limit"),
            actor="cli",
        ),
        as_json=as_json,
    )
    text = f"{issued.key}\n\n{sdk_snippet(issued.key, base_url())}" if not as_json else ""
    emit(as_json, {**jsonable(issued.info), "key": issued.key}, text)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def keys_table(keys: list[accounts.ApiKeyInfo]) -> str:
    if not keys:
        return "no keys"
    header = [
        "ID",
        "NAME",
        "PREFIX",
        "STATUS",
        "AGENT",
        "MODELS",
        "EXPIRES (UTC)",
        "LAST USED (UTC)",
        "SPENT/LIMIT (USD, MONTH)",
    ]
    rows = [header] + [
        [
            k.id,
            k.name,
            k.prefix + "…",
            k.status,
            k.agent or "-",
            ",".join(k.models) if k.models else "any",
            _when(k.expires_at),
            _when(k.last_used_at),
            _spend(k),
        ]
        for k in keys
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _spend(k: accounts.ApiKeyInfo) -> str:
    limit = k.spend_limit_micro_usd
    return f"{format_usd(k.spent_this_month_micro_usd)}/{format_usd(limit) if limit is not None else 'none'}"


@apikey_group.command("list")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@json_option
def apikey_list(org_ref: str, as_json: bool) -> None:
    """List an org's API keys (prefixes only, never the keys)."""
    keys = run_in_session(lambda s: accounts.list_api_keys(s, org_ref), as_json=as_json)
    emit(as_json, keys, keys_table(keys))


@apikey_group.command("revoke")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.argument("key_id")
@json_option
def apikey_revoke(org_ref: str, key_id: str, as_json: bool) -> None:
    """Revoke an API key; requests with it fail from now on (on other running servers within
    the change poll, a couple of seconds)."""
    info = run_in_session(lambda s: accounts.revoke_api_key(s, org_ref, key_id, actor="cli"), as_json=as_json)
    emit(as_json, info, f"revoked {info.id} ({info.name})")


apikey_group.add_command(apikey_update)
