"""Admin endpoints for feature flags: the operator's alone (server/access/policy.py).

`GET /admin/v1/flags` lists every known flag with its default, what it gates and its stored
rollout; `PUT /admin/v1/flags/{name}` sets the percentage, `POST .../canary` adds or removes
canary orgs and `POST .../kill` flips the global kill switch. Each write bumps the platform's
config version and announces `PLATFORM_SCOPE`, so every replica rebuilds its snapshots within
seconds (docs/flags.md).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from routing.flag_store import FeatureFlag, set_canary, set_killed, set_percent
from routing.flags import FLAGS, FlagDef, UnknownFlagError
from routing.platform import PLATFORM_SCOPE
from server.accounts import get_org
from server.admin.auth import require_admin
from server.admin.orgs import CallerDep, ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


class FlagOut(BaseModel):
    name: str
    default: bool
    gates: str
    percent: float | None = None
    canary: list[str] = Field(default_factory=list)
    killed: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None

    @classmethod
    def of(cls, definition: FlagDef, row: FeatureFlag | None) -> FlagOut:
        out = cls(name=definition.name, default=definition.default, gates=definition.gates)
        if row is not None:
            out.percent, out.canary, out.killed = row.percent, list(row.canary or []), bool(row.killed)
            out.updated_at, out.updated_by = row.updated_at, row.updated_by
        return out


class PercentIn(BaseModel):
    percent: float | None = Field(default=None, ge=0, le=100)
    """None: no percentage rollout (the default applies outside the canary list)."""


class CanaryIn(BaseModel):
    add: list[str] = Field(default_factory=list)
    """Orgs (id or name) that get the flag on; an unknown one is a 404 and nothing is written."""
    remove: list[str] = Field(default_factory=list)


class KillIn(BaseModel):
    killed: bool = True


async def _out(session: AsyncSession, name: str) -> FlagOut:
    return FlagOut.of(FLAGS[name], await session.get(FeatureFlag, name))


def _known(name: str) -> str:
    if name not in FLAGS:
        raise HTTPException(404, str(UnknownFlagError(name)))
    return name


@router.get("/flags", response_model=list[FlagOut])
async def list_flags(svc: ServicesDep) -> list[FlagOut]:
    async with svc.db.session() as s:
        return [await _out(s, name) for name in FLAGS]


@router.put("/flags/{name}", response_model=FlagOut)
async def put_flag(name: str, body: PercentIn, svc: ServicesDep, caller: CallerDep) -> FlagOut:
    async with svc.db.session() as s:
        await set_percent(s, _known(name), body.percent, actor=caller.label)
    return await _changed(svc, name)


@router.post("/flags/{name}/canary", response_model=FlagOut)
async def post_canary(name: str, body: CanaryIn, svc: ServicesDep, caller: CallerDep) -> FlagOut:
    async with svc.db.session() as s:
        added = [(await get_org(s, ref)).id for ref in body.add]
        await set_canary(s, _known(name), add=added, remove=body.remove, actor=caller.label)
    return await _changed(svc, name)


@router.post("/flags/{name}/kill", response_model=FlagOut)
async def post_kill(name: str, body: KillIn, svc: ServicesDep, caller: CallerDep) -> FlagOut:
    async with svc.db.session() as s:
        await set_killed(s, _known(name), body.killed, actor=caller.label)
    return await _changed(svc, name)


async def _changed(svc: ServicesDep, name: str) -> FlagOut:
    svc.config_changed(PLATFORM_SCOPE)
    async with svc.db.session() as s:
        return await _out(s, name)
