"""`patchbay config history|rollback`: an org's configuration versions, and going back to one.

Versions are recorded by every change to an org's routing matrix, agents and connections'
order or status (routing/config_history.py); a rollback restores one and is itself recorded
(routing/config_rollback.py). Neither ever shows or restores a secret. Feature flags are the
platform's: `--platform` instead of `--org` lists and rolls back their versions, and an org's
history also shows the flag changes that reached it (routing/flag_history.py).

Exit codes: 0 done; 1 no such org or version; 2 neither or both of --org and --platform;
3 database not ready; 4 the rollback was applied but some items could not be restored (a
deleted or revoked connection, listed with the reason).
"""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.errors import NotFoundError
from routing import config_history
from routing.config_rollback import RollbackResult, rollback
from routing.flag_history import TimelineEntry, org_timeline
from routing.platform import PLATFORM_SCOPE
from server import accounts
from server.cli_common import EXIT_PARTIAL, emit, fail, json_option, run_in_session

_org_option = click.option("--org", "org_ref", help="Org id or name.")
_platform_option = click.option(
    "--platform", is_flag=True, help="The platform's versions (feature flags) instead of an org's."
)


def _scope_ref(org_ref: str | None, platform: bool, as_json: bool) -> str | None:
    """The org reference, or None for the platform scope; exits 2 unless exactly one was given."""
    if (org_ref is None) == (not platform):
        fail("give exactly one of --org ORG and --platform", 2, as_json=as_json, kind="usage")
    return org_ref


async def _scope_id(s: AsyncSession, org_ref: str | None) -> str:
    return PLATFORM_SCOPE if org_ref is None else (await accounts.get_org(s, org_ref)).id


@click.group("config")
def config_group() -> None:
    """An org's configuration history and rollback (docs/operations.md#configuration-history)."""


def history_item(row: config_history.ConfigHistory | TimelineEntry) -> dict[str, Any]:
    return {
        "scope": row.scope if isinstance(row, TimelineEntry) else config_history.scope_name(row.org_id),
        "version": row.version,
        "kind": row.kind,
        "actor": row.actor,
        "created_at": row.created_at.isoformat(),
        "changes": list(row.changes),
    }


@config_group.command("history")
@_org_option
@_platform_option
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest N versions."
)
@click.option("--show", type=int, help="Print the full (secret-free) snapshot of this version.")
@json_option
def history(org_ref: str | None, platform: bool, limit: int, show: int | None, as_json: bool) -> None:
    """List configuration versions, newest first: version, when, who, what changed.

    With --org, the org's own versions and the platform flag versions that changed which
    flags are on for it (marked `platform`); with --platform, the flag versions alone.
    """
    org_ref = _scope_ref(org_ref, platform, as_json)

    async def run(s: AsyncSession) -> dict[str, Any]:
        scope_id = await _scope_id(s, org_ref)
        rows: list[Any]
        if scope_id == PLATFORM_SCOPE:
            rows = await config_history.history(s, scope_id, limit=limit)
        else:
            rows = await org_timeline(s, scope_id, limit=limit)
        out: dict[str, Any] = {
            "org_id": None if scope_id == PLATFORM_SCOPE else scope_id,
            "scope": config_history.scope_name(scope_id),
            "versions": [history_item(r) for r in rows],
        }
        if show is not None:
            row = await config_history.version(s, scope_id, show)
            if row is None:
                raise NotFoundError(f"no configuration version {show} here", param="show")
            out["snapshot"] = row.snapshot
        return out

    payload = run_in_session(run, as_json=as_json)
    lines: list[str] = []
    for item in payload["versions"]:
        label = f"v{item['version']}" if item["scope"] == payload["scope"] else f"platform v{item['version']}"
        lines.append(f"{label}\t{item['created_at']}\t{item['actor']}\t{item['kind']}")
        lines += [f"    {change}" for change in item["changes"]]
    if "snapshot" in payload:
        lines.append(json.dumps(payload["snapshot"], indent=2, sort_keys=True))
    emit(as_json, payload, "\n".join(lines) or "no configuration versions yet")


@config_group.command("rollback")
@_org_option
@_platform_option
@click.option("--to", "to_version", type=int, required=True, help="The version to restore.")
@json_option
def rollback_command(org_ref: str | None, platform: bool, to_version: int, as_json: bool) -> None:
    """Restore the configuration as it was at version --to (recorded as a new version).

    With --org, the org's routing, agents and connections; with --platform, the feature
    flags (every org's). A deleted or revoked connection is never brought back; such items
    are listed as not restored, with the reason, and the exit code is 4.
    """
    org_ref = _scope_ref(org_ref, platform, as_json)

    async def run(s: AsyncSession) -> RollbackResult:
        return await rollback(s, await _scope_id(s, org_ref), to_version)

    result = run_in_session(run, as_json=as_json)
    lines = [f"restored version {result.to_version} as version {result.new_version}"]
    lines += [f"  restored: {item}" for item in result.restored]
    lines += [f"  not restored: {item}" for item in result.not_restored]
    emit(as_json, result, "\n".join(lines))
    if result.not_restored:
        raise SystemExit(EXIT_PARTIAL)
