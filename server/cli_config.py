"""`patchbay config history|rollback`: an org's configuration versions, and going back to one.

Versions are recorded by every change to an org's routing matrix, agents and connections'
order or status (routing/config_history.py); a rollback restores one and is itself recorded
(routing/config_rollback.py). Neither ever shows or restores a secret.

Exit codes: 0 done; 1 no such org or version; 3 database not ready; 4 the rollback was applied
but some items could not be restored (a deleted or revoked connection, listed with the reason).
"""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.errors import NotFoundError
from routing import config_history
from routing.config_rollback import RollbackResult, rollback
from server import accounts
from server.cli_common import EXIT_PARTIAL, emit, json_option, run_in_session


@click.group("config")
def config_group() -> None:
    """An org's configuration history and rollback (docs/operations.md#configuration-history)."""


def history_item(row: config_history.ConfigHistory) -> dict[str, Any]:
    return {
        "version": row.version,
        "kind": row.kind,
        "actor": row.actor,
        "created_at": row.created_at.isoformat(),
        "changes": list(row.changes),
    }


@config_group.command("history")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest N versions."
)
@click.option("--show", type=int, help="Print the full (secret-free) snapshot of this version.")
@json_option
def history(org_ref: str, limit: int, show: int | None, as_json: bool) -> None:
    """List the org's configuration versions, newest first: version, when, who, what changed."""

    async def run(s: AsyncSession) -> dict[str, Any]:
        org_id = (await accounts.get_org(s, org_ref)).id
        rows = await config_history.history(s, org_id, limit=limit)
        out: dict[str, Any] = {"org_id": org_id, "versions": [history_item(r) for r in rows]}
        if show is not None:
            row = await config_history.version(s, org_id, show)
            if row is None:
                raise NotFoundError(f"org has no configuration version {show}", param="show")
            out["snapshot"] = row.snapshot
        return out

    payload = run_in_session(run, as_json=as_json)
    lines: list[str] = []
    for item in payload["versions"]:
        lines.append(f"v{item['version']}\t{item['created_at']}\t{item['actor']}\t{item['kind']}")
        lines += [f"    {change}" for change in item["changes"]]
    if "snapshot" in payload:
        lines.append(json.dumps(payload["snapshot"], indent=2, sort_keys=True))
    emit(as_json, payload, "\n".join(lines) or "no configuration versions yet")


@config_group.command("rollback")
@click.option("--org", "org_ref", required=True, help="Org id or name.")
@click.option("--to", "to_version", type=int, required=True, help="The version to restore.")
@json_option
def rollback_command(org_ref: str, to_version: int, as_json: bool) -> None:
    """Restore the org's configuration as it was at version --to (recorded as a new version).

    A deleted or revoked connection is never brought back; such items are listed as not
    restored, with the reason, and the exit code is 4.
    """

    async def run(s: AsyncSession) -> RollbackResult:
        org_id = (await accounts.get_org(s, org_ref)).id
        return await rollback(s, org_id, to_version)

    result = run_in_session(run, as_json=as_json)
    lines = [f"restored version {result.to_version} as version {result.new_version}"]
    lines += [f"  restored: {item}" for item in result.restored]
    lines += [f"  not restored: {item}" for item in result.not_restored]
    emit(as_json, result, "\n".join(lines))
    if result.not_restored:
        raise SystemExit(EXIT_PARTIAL)
