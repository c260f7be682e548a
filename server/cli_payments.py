"""`patchbay billing reconcile`: apply the Stripe events a webhook missed, from the command line.

It asks Stripe for the events since a time (Stripe keeps 30 days) and applies each exactly as
`POST /v1/stripe/webhook` would (`server.payments.webhook.Webhook.reconcile`): an event applied
before is skipped, so running it again changes nothing. Exit codes follow `server.cli`: purchases
off or Stripe refusing is 1, a usage mistake 2, an unready database 3.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from billing.report import parse_instant
from foundation.errors import RequestError
from server.cli_common import emit, fail, json_option, run_with_services
from server.payments.client import PurchasesOffError
from server.payments.webhook import Applied
from server.services import Services


@click.group("billing")
def billing_group() -> None:
    """Payments through Stripe (docs/billing.md, "Stripe")."""


@billing_group.command("reconcile")
@click.option(
    "--since",
    default="3d",
    show_default=True,
    help="An ISO 8601 time or a span back from now (24h, 7d; Stripe keeps 30d).",
)
@json_option
def reconcile(since: str, as_json: bool) -> None:
    """Apply every Stripe event since a time that was not applied yet (a missed webhook)."""
    try:
        start = parse_instant(since, now=datetime.now(UTC), param="since")
    except RequestError as exc:
        fail(str(exc), 2, as_json=as_json, kind=exc.code)

    async def run(svc: Services) -> list[Applied]:
        if svc.webhook is None:
            raise PurchasesOffError()
        return await svc.webhook.reconcile(int(start.timestamp()))

    applied = run_with_services(run, as_json=as_json)
    fresh = [a for a in applied if not a.duplicate]
    lines = [
        f"{len(applied)} events since {start.isoformat()}: {len(fresh)} applied now, {len(applied) - len(fresh)} before"
    ]
    lines += [f"  {a.org_id or '-'}: {a.outcome}" for a in fresh]
    payload = {
        "since": start.isoformat(),
        "events": len(applied),
        "applied": [{"org_id": a.org_id, "outcome": a.outcome} for a in fresh],
        "already_applied": len(applied) - len(fresh),
    }
    emit(as_json, payload, "\n".join(lines))
