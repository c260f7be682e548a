"""`/admin/v1/orgs/{org}/config/history` and `.../config/rollback`: an org's configuration
versions and going back to one (routing/config_history.py, routing/config_rollback.py); and
`/admin/v1/platform/config/history|rollback`, the same for the platform's feature flags.

Reading an org's history needs `read`; a rollback needs `configure`, like the changes it undoes;
the platform's are the operator's (server/access/policy.py). An org's history also lists the
platform flag versions that changed which flags are on for it (`scope: platform`). A rollback never restores a deleted or revoked connection; those
are listed in `not_restored` with the reason, and the answer is still 200 (the rest was
restored). Running servers follow the rolled-back configuration at once (this replica) or
within their poll interval (the others, through the config-version counter).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from routing import config_history
from routing.config_rollback import RollbackResult, rollback
from routing.flag_history import TimelineEntry, org_timeline
from routing.platform import PLATFORM_SCOPE
from server import accounts
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


class VersionOut(BaseModel):
    scope: Literal["org", "platform"] = Field(
        description="`platform`: a feature-flag version of the platform that changed this org's flags."
    )
    version: int
    kind: str
    actor: str
    created_at: datetime
    changes: list[str]
    snapshot: dict[str, Any] | None = Field(
        default=None, description="The secret-free configuration (only with `snapshots=true`)."
    )


class RollbackIn(BaseModel):
    # The column is a 32-bit integer: a larger number names no version, and must not reach the driver.
    to_version: int = Field(ge=1, le=2**31 - 1, description="The version to restore (from the history).")


class RollbackOut(BaseModel):
    to_version: int
    new_version: int
    restored: list[str]
    not_restored: list[str]


def _version_out(row: config_history.ConfigHistory | TimelineEntry, snapshots: bool) -> VersionOut:
    scope = row.scope if isinstance(row, TimelineEntry) else config_history.scope_name(row.org_id)
    return VersionOut(
        scope=scope,
        version=row.version,
        kind=row.kind,
        actor=row.actor,
        created_at=row.created_at,
        changes=list(row.changes),
        snapshot=dict(row.snapshot) if snapshots and row.snapshot else None,
    )


def _rollback_out(result: RollbackResult) -> RollbackOut:
    return RollbackOut(
        to_version=result.to_version,
        new_version=result.new_version,
        restored=result.restored,
        not_restored=result.not_restored,
    )


_Limit = Query(default=50, ge=1, le=1000)
_Snapshots = Query(default=False, description="Include each version's snapshot.")


@router.get("/orgs/{org}/config/history", response_model=list[VersionOut])
async def get_history(
    org: str, svc: ServicesDep, limit: int = _Limit, snapshots: bool = _Snapshots
) -> list[VersionOut]:
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        return [_version_out(r, snapshots) for r in await org_timeline(s, org_id, limit=limit)]


@router.post("/orgs/{org}/config/rollback", response_model=RollbackOut)
async def post_rollback(org: str, body: RollbackIn, svc: ServicesDep) -> RollbackOut:
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        result = await rollback(s, org_id, body.to_version)
    svc.config_changed(org_id)
    return _rollback_out(result)


@router.get("/platform/config/history", response_model=list[VersionOut])
async def get_platform_history(
    svc: ServicesDep, limit: int = _Limit, snapshots: bool = _Snapshots
) -> list[VersionOut]:
    async with svc.db.session() as s:
        rows = await config_history.history(s, PLATFORM_SCOPE, limit=limit)
        return [_version_out(r, snapshots) for r in rows]


@router.post("/platform/config/rollback", response_model=RollbackOut)
async def post_platform_rollback(body: RollbackIn, svc: ServicesDep) -> RollbackOut:
    async with svc.db.session() as s:
        result = await rollback(s, PLATFORM_SCOPE, body.to_version)
    svc.config_changed(PLATFORM_SCOPE)
    return _rollback_out(result)
