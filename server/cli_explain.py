"""`patchbay agent explain`: why each model of a chain can or cannot be used now.

The same answer as the admin API's routing preview (`server.explain`), over the composition
root, so it reads the cooldowns the servers share when `PATCHBAY_REDIS_URL` is set (without
Redis, cooldowns live in each server process and this command sees none).

Exit codes: 0 a request would be served (some model of the chain is usable now); 5 explained,
but no model can be used now (or no chain applies); 1 unknown org or agent; 2 usage error
(unknown intent); 3 not ready (database).
"""

from __future__ import annotations

import sys

import click

from foundation.errors import RequestError
from server import accounts
from server.cli_common import emit, fail, json_option, run_with_services
from server.explain import PreviewOut, RefOut, parse_intent, preview
from server.services import Services

EXIT_UNROUTABLE = 5


def _line(r: RefOut) -> str:
    mark = {"usable": "ok", "waiting": "wait", "unusable": "no"}.get(r.state, r.state)
    return f"{mark:>4}  {r.ref}\t{r.text}"


def _text(out: PreviewOut) -> str:
    head = f"{out.intent} for {f'agent {out.agent}' if out.agent else 'the org'} ({out.tier} tier)"
    if out.error is not None:
        return f"{head}: {out.error}"
    lines = [f"{head}, chain from {out.source}:", *(_line(r) for r in out.chain)]
    lines.append(f"first tried: {out.first}" if out.first else "no model of this chain can be used now")
    return "\n".join(lines)


@click.command("explain")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.argument("name", required=False)
@click.option(
    "--intent",
    default="chat",
    show_default=True,
    help="Task intent: chat, voice_turn, vision, structured, tools, summarize, stt, tts.",
)
@click.option("--chain", help="Explain these refs (REF,REF,..., primary first) instead of the saved chain.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also list every model the org's connections offer, explained for the intent.",
)
@json_option
def agent_explain(
    org_ref: str, name: str | None, intent: str, chain: str | None, show_all: bool, as_json: bool
) -> None:
    """Explain the chain a request for INTENT follows (as agent NAME's key, when given): each
    model usable, or why not in plain words (missing capability, no connection, cooling down
    until T, not allowed on this tier, blocked by a conformance gate)."""
    try:
        wanted = parse_intent(intent)
    except RequestError as exc:
        raise click.BadParameter(str(exc), param_hint="--intent") from None

    async def run(services: Services) -> PreviewOut:
        async with services.db.session() as session:
            org_id = (await accounts.get_org(session, org_ref)).id
        return await preview(
            services.gateway, org_id, wanted, name, chain.split(",") if chain is not None else None
        )

    try:
        out = run_with_services(run, as_json=as_json)
    except RequestError as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)
    text = _text(out)
    if show_all:
        text += "\nmodels the org's connections offer:\n" + (
            "\n".join(_line(r) for r in out.reachable) or "  none"
        )
    emit(as_json, out.model_dump(mode="json", exclude=None if show_all else {"reachable"}), text)
    if out.first is None:
        sys.exit(EXIT_UNROUTABLE)
