"""`patchbay conformance run|show|override`: measure an org's models, read the stored report,
and let one model past a gate (docs/conformance.md).

`run` prints progress on stderr (one line per case) and, on stdout, a table or with `--json`
one entry per (model, capability): model, capability, cases, passed, rate, threshold, gate and
the latency and cost figures. Exit codes: 0 every gate passed; 1 the run could not be made (no
org, connection or model to measure, unknown suite); 2 usage error; 3 environment not ready;
4 the run finished but a gate failed or a model could not be reached.
"""

from __future__ import annotations

from typing import Any

import click

from routing.conformance import settings as gate_store
from routing.conformance.run import MAX_RUNS, RunOptions
from routing.conformance.suite import DEFAULT_SUITE, SUITES
from server import conformance
from server.cli_common import EXIT_PARTIAL, emit, json_option, run_with_services
from server.services import Services


@click.group("conformance")
def conformance_group() -> None:
    """Conformance: measure models, read results, override gates."""


def _table(entries: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    rows = [list(columns)] + [["-" if e.get(c) is None else str(e.get(c)) for c in columns] for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


_RUN_COLUMNS = (
    "connection",
    "model",
    "capability",
    "cases",
    "passed",
    "rate",
    "threshold",
    "gate",
    "ttft_ms",
    "total_ms",
    "cost_micro_usd",
)


@conformance_group.command("run")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option("--connection", help="Only this connection: a profile id `provider:name`.")
@click.option("--model", help="Only this model: an id, or `provider/model`.")
@click.option("--suite", default=DEFAULT_SUITE, show_default=True, help=f"The suite: {', '.join(SUITES)}.")
@click.option(
    "--runs", type=click.IntRange(1, MAX_RUNS), default=1, show_default=True, help="Times each case runs."
)
@json_option
def run(
    org_ref: str, connection: str | None, model: str | None, suite: str, runs: int, as_json: bool
) -> None:
    """Run the conformance suite against the org's real connections and store the results.

    Each case (tool calls, JSON-schema fidelity, refusals, vision and audio where claimed) is a
    real call with a token budget; latency and cost are measured over all runs."""
    options = RunOptions(connection=connection, model=model, suite=suite, runs=runs)

    def progress(line: str) -> None:
        click.echo(line, err=True)

    async def go(svc: Services) -> conformance.RunOutcome:
        return await conformance.run(svc, org_ref, options, progress)

    outcome = run_with_services(go, as_json=as_json)
    payload = outcome.as_json()
    text = _table(payload["entries"], _RUN_COLUMNS)
    for gone in payload["unreachable"]:
        text += f"\n{gone['connection']}/{gone['model']}: not measured ({gone['error']})"
    emit(as_json, payload["entries"] if as_json else payload, text)
    if not outcome.passed:
        raise SystemExit(EXIT_PARTIAL)


@conformance_group.command("show")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@json_option
def show(org_ref: str, as_json: bool) -> None:
    """The stored results with their gates (`stale`: measured by another suite version)."""
    settings, rows = run_with_services(lambda svc: conformance.stored(svc, org_ref), as_json=as_json)
    entries = [
        {
            k: getattr(r, k)
            for k in (
                "connection",
                "model",
                "capability",
                "cases",
                "passed",
                "rate",
                "threshold",
                "gate",
                "suite_version",
            )
        }
        for r in rows
    ]
    head = f"gates: {'on' if settings.enabled else 'off'}"
    emit(
        as_json,
        {**settings.as_json(), "org_id": settings.org_id, "results": entries},
        head
        + "\n"
        + (_table(entries, tuple(entries[0])) if entries else "no results: run `patchbay conformance run`"),
    )


@conformance_group.command("override")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option("--connection", required=True, help="Profile id `provider:name`.")
@click.option("--model", required=True, help="The model id.")
@click.option("--capability", required=True, help="tools, json, vision or audio_in.")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@click.option("--off", "remove", is_flag=True, help="Take the override back.")
@json_option
def override(
    org_ref: str, connection: str, model: str, capability: str, reason: str, remove: bool, as_json: bool
) -> None:
    """Operator override: let a model past a gate whatever was measured (audited)."""

    async def go(svc: Services) -> gate_store.GateSettings:
        org_id = await conformance.org_id_of(svc, org_ref)
        async with svc.db.session() as s:
            return await gate_store.set_override(
                s,
                org_id,
                connection=connection,
                model=model,
                capability=capability,
                on=not remove,
                reason=reason,
                actor="cli",
            )

    info = run_with_services(go, as_json=as_json)
    verb = "removed" if remove else "set"
    emit(
        as_json,
        {"org_id": info.org_id, **info.as_json()},
        f"override {verb}: {connection}/{model} {capability}",
    )
