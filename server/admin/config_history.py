"""`/admin/v1/orgs/{org}/config/history` and `.../config/rollback`: an org's configuration
versions and going back to one (routing/config_history.py, routing/config_rollback.py).

Reading the history needs `read`; a rollback needs `configure`, like the changes it undoes
(server/access/policy.py). A rollback never restores a deleted or revoked connection; those
are listed in `not_restored` with the reason, and the answer is still 200 (the rest was
restored). Running servers follow the rolled-back configuration at once (this replica) or
within their poll interval (the others, through the config-version counter).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from routing import config_history
from routing.config_rollback import rollback
from server import accounts
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep

router = APIRouter(prefix="/admin/v1/orgs/{org}", dependencies=[Depends(require_admin)], tags=["admin"])


class VersionOut(BaseModel):
    version: int
    kind: str
    actor: str
    created_at: datetime
    changes: list[str]
    snapshot: dict[str, Any] | None = Field(
        default=None, description="The secret-free configuration (only with `snapshots=true`)."
    )


class RollbackIn(BaseModel):
    to_version: int = Field(ge=1, description="The version to restore (from the history).")


class RollbackOut(BaseModel):
    to_version: int
    new_version: int
    restored: list[str]
    not_restored: list[str]


@router.get("/config/history", response_model=list[VersionOut])
async def get_history(
    org: str,
    svc: ServicesDep,
    limit: int = Query(default=50, ge=1, le=1000),
    snapshots: bool = Query(default=False, description="Include each version's snapshot."),
) -> list[VersionOut]:
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        rows = await config_history.history(s, org_id, limit=limit)
        return [
            VersionOut(
                version=r.version,
                kind=r.kind,
                actor=r.actor,
                created_at=r.created_at,
                changes=list(r.changes),
                snapshot=dict(r.snapshot) if snapshots else None,
            )
            for r in rows
        ]


@router.post("/config/rollback", response_model=RollbackOut)
async def post_rollback(org: str, body: RollbackIn, svc: ServicesDep) -> RollbackOut:
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        result = await rollback(s, org_id, body.to_version)
    svc.config_changed(org_id)
    return RollbackOut(
        to_version=result.to_version,
        new_version=result.new_version,
        restored=result.restored,
        not_restored=result.not_restored,
    )
