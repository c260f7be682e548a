"""`patchbay org update ORG --monthly-budget USD` and `patchbay apikey update --org ORG KEY
--spend-limit USD`: an org's monthly budget and its API keys' spend limits.

Amounts are exact USD (at most six decimal places; docs/billing.md); `none` removes the cap.
Running servers pick a change up within their config poll (a couple of seconds). Exit codes
are those of `server/cli.py`: an amount that is not exact or an unknown org or key is 1.
"""

from __future__ import annotations

import click

from server import budgets
from server.cli_common import emit, json_option, run_in_session

_BUDGET_HELP = "USD per calendar month (UTC), an exact decimal such as 250 or 99.50; `none` removes it."
_LIMIT_HELP = "The key's spend limit in USD per calendar month (UTC); `none` removes it."


@click.command("update")
@click.argument("org_ref", metavar="ORG")
@click.option("--monthly-budget", "budget", required=True, metavar="USD", help=_BUDGET_HELP)
@json_option
def org_update(org_ref: str, budget: str, as_json: bool) -> None:
    """Change an org's settings: its monthly budget (what platform-paid and surcharged requests
    may be charged per calendar month, UTC; requests past it get 402 `budget_exceeded`)."""
    info = run_in_session(
        lambda s: budgets.set_org_budget(
            s, org_ref, budgets.parse_cap(budget, param="monthly_budget"), actor="cli"
        ),
        as_json=as_json,
    )
    emit(as_json, info.as_json("monthly_budget"), info.text("monthly budget"))


@click.command("update")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.argument("key_id")
@click.option("--spend-limit", "limit", required=True, metavar="USD", help=_LIMIT_HELP)
@json_option
def apikey_update(org_ref: str, key_id: str, limit: str, as_json: bool) -> None:
    """Change an API key's monthly spend limit (requests past it get 402 `spend_limit_exceeded`)."""
    info = run_in_session(
        lambda s: budgets.set_key_limit(
            s, org_ref, key_id, budgets.parse_cap(limit, param="spend_limit"), actor="cli"
        ),
        as_json=as_json,
    )
    emit(as_json, info.as_json("spend_limit"), info.text(f"spend limit of {key_id}"))
