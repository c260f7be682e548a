"""Admin endpoints for conformance (docs/conformance.md, docs/admin-api.md#conformance).

- `POST /admin/v1/orgs/{org}/conformance/runs` runs the suite against the org's connections
  (narrowed by `connection`, `model`), stores the results and answers one entry per
  (model, capability). It waits for the run: bounded by the suite's cases × `runs` calls.
- `GET /admin/v1/orgs/{org}/conformance`: the gate settings, the suites, and every stored result
  with its gate (`pass`, `fail`, or `stale` when measured by another suite version).
- `PUT /admin/v1/orgs/{org}/conformance/overrides`: the operator lets one (connection, model,
  capability) past its gate, or takes that back; audited with the reason.
Gates are turned on and thresholds set with `PATCH /admin/v1/orgs/{org}` (server/admin/budgets.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from routing.conformance import settings as gate_store
from routing.conformance.run import MAX_RUNS, RunOptions
from routing.conformance.suite import DEFAULT_SUITE, SUITES
from server import conformance
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str | None = Field(
        default=None, description="A profile id `provider:name`; default: every active connection."
    )
    model: str | None = Field(
        default=None, description="A model id or `provider/model`; default: the connection's models."
    )
    suite: str = Field(default=DEFAULT_SUITE, description=f"One of: {', '.join(SUITES)}.")
    runs: int = Field(
        default=1,
        ge=1,
        le=MAX_RUNS,
        description="How many times each case runs (latency and cost are over all).",
    )


class ResultOut(BaseModel):
    connection: str
    platform: bool
    model: str
    capability: str
    suite: str
    suite_version: int
    cases: int
    passed: int
    rate: float
    threshold: float
    gate: str = Field(description="`pass`, `fail`, or `stale` (measured by another suite version).")
    stale: bool
    ttft_ms: float | None
    total_ms: float | None
    tokens_per_s: float | None
    cost_micro_usd: int
    failures: dict[str, Any]
    measured_at: datetime


class ConformanceOut(BaseModel):
    org_id: str
    conformance_gates: bool
    conformance_thresholds: dict[str, float]
    conformance_overrides: list[dict[str, str]]
    suites: list[dict[str, Any]]
    results: list[ResultOut]


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str = Field(description="Profile id `provider:name`.")
    model: str
    capability: str = Field(description="tools, json, vision or audio_in.")
    on: bool = True
    reason: str = Field(min_length=1, max_length=500, description="Kept in the audit log.")


@router.post("/orgs/{org}/conformance/runs", status_code=201)
async def create_run(org: str, body: RunIn, svc: ServicesDep) -> dict[str, Any]:
    options = RunOptions(connection=body.connection, model=body.model, suite=body.suite, runs=body.runs)
    outcome = await conformance.run(svc, org, options)
    return outcome.as_json()


@router.get("/orgs/{org}/conformance", response_model=ConformanceOut)
async def get_conformance(org: str, svc: ServicesDep) -> ConformanceOut:
    settings, rows = await conformance.stored(svc, org)
    return ConformanceOut(
        org_id=settings.org_id,
        **settings.as_json(),
        suites=[{"name": s.name, "version": s.version, "cases": len(s.cases)} for s in SUITES.values()],
        results=[ResultOut.model_validate(r, from_attributes=True) for r in rows],
    )


@router.put("/orgs/{org}/conformance/overrides")
async def put_override(org: str, body: OverrideIn, svc: ServicesDep) -> dict[str, Any]:
    org_id = await conformance.org_id_of(svc, org)
    async with svc.db.session() as s:
        info = await gate_store.set_override(
            s,
            org_id,
            connection=body.connection,
            model=body.model,
            capability=body.capability,
            on=body.on,
            reason=body.reason,
            actor="operator",
        )
    svc.config_changed(org_id)
    return {"org_id": org_id, **info.as_json()}
