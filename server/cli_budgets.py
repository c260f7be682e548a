"""`patchbay org update ORG [--monthly-budget USD] [--tier T] [--byok-override on|off]
[--conformance-gates on|off]` and
`patchbay apikey update --org ORG KEY --spend-limit USD`: an org's monthly budget, tier and
BYOK override (`server.org_plan`), and its API keys' spend limits.

Amounts are exact USD (at most six decimal places; docs/billing.md); `none` removes the cap.
Running servers pick a change up within their config poll (a couple of seconds): a tier or
override change bumps the org's config version. Exit codes are those of `server/cli.py`: an
amount that is not exact, a tier the table does not have, or an unknown org or key is 1; no
option at all is 2.
"""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.tiers import Tier
from routing.conformance.settings import GateSettings, set_gates
from server import budgets, org_plan
from server.cli_common import emit, json_option, run_in_session

_BUDGET_HELP = "USD per calendar month (UTC), an exact decimal such as 250 or 99.50; `none` removes it."
_TIER_HELP = (
    f"The org's tier: {', '.join(t.value for t in Tier)}. A downgrade deletes nothing (docs/billing.md)."
)
_OVERRIDE_HELP = "on: the org keeps BYOK (its own keys) whatever its tier; off: its tier decides."
_GATES_HELP = (
    "on: route only to models whose conformance gates pass (docs/conformance.md); off: gates are not checked."
)
_LIMIT_HELP = "The key's spend limit in USD per calendar month (UTC); `none` removes it."


@click.command("update")
@click.argument("org_ref", metavar="ORG")
@click.option("--monthly-budget", "budget", metavar="USD", help=_BUDGET_HELP)
@click.option("--tier", metavar="TIER", help=_TIER_HELP)
@click.option("--byok-override", "override", metavar="on|off", help=_OVERRIDE_HELP)
@click.option("--conformance-gates", "gates", metavar="on|off", help=_GATES_HELP)
@json_option
def org_update(
    org_ref: str, budget: str | None, tier: str | None, override: str | None, gates: str | None, as_json: bool
) -> None:
    """Change an org's settings: its monthly budget (what platform-paid and surcharged requests
    may be charged per calendar month, UTC; requests past it get 402 `budget_exceeded`), its
    tier, its BYOK override and its conformance gates. Give at least one option."""
    if budget is None and tier is None and override is None and gates is None:
        raise click.UsageError("give --monthly-budget, --tier, --byok-override or --conformance-gates")

    async def change(s: AsyncSession) -> tuple[budgets.CapInfo, org_plan.PlanInfo, GateSettings]:
        chosen = org_plan.parse_tier(tier) if tier is not None else None
        switch = org_plan.parse_switch(override, param="byok_override") if override is not None else None
        if budget is not None:
            await budgets.set_org_budget(
                s, org_ref, budgets.parse_cap(budget, param="monthly_budget"), actor="cli"
            )
        plan = await org_plan.set_plan(s, org_ref, tier=chosen, byok_override=switch, actor="cli")
        on = org_plan.parse_switch(gates, param="conformance_gates") if gates is not None else None
        gate_info = await set_gates(s, plan.org_id, enabled=on, actor="cli")
        return await budgets.org_budget(s, org_ref), plan, gate_info

    info, plan, gate_info = run_in_session(change, as_json=as_json)
    gates_text = f"conformance gates: {'on' if gate_info.enabled else 'off'}"
    emit(
        as_json,
        {**info.as_json("monthly_budget"), **plan.as_json(), "conformance_gates": gate_info.enabled},
        f"{plan.text()}\n{info.text('monthly budget')}\n{gates_text}",
    )


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
