"""The conformance operations the CLI and the admin API share: run the suite for an org, read
its stored report, change its gates. Thin: the work is `routing.conformance`; this resolves the
org, reads the snapshot through the registry and tells the process its config changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routing.conformance import settings as gate_store
from routing.conformance.gates import OrgGates
from routing.conformance.harness import Progress
from routing.conformance.run import RunOptions, RunReport, run_conformance
from routing.conformance.store import ReportRow, report
from server.accounts import get_org
from server.services import Services


@dataclass(frozen=True, slots=True)
class RunOutcome:
    report: RunReport
    gates: OrgGates

    @property
    def passed(self) -> bool:
        return self.report.passed(self.gates)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.report.run_id,
            "org_id": self.report.org_id,
            "suite": self.report.suite,
            "suite_version": self.report.suite_version,
            "entries": self.report.entries(self.gates),
            "unreachable": [
                {"connection": r.connection, "model": r.model, "error": r.error}
                for r in self.report.results
                if r.error
            ],
        }


async def org_id_of(svc: Services, org_ref: str) -> str:
    async with svc.db.session() as session:
        return (await get_org(session, org_ref)).id


async def run(
    svc: Services, org_ref: str, options: RunOptions, progress: Progress | None = None
) -> RunOutcome:
    org_id = await org_id_of(svc, org_ref)
    registry = svc.gateway.registry
    entry = await registry.get(org_id)
    found = await run_conformance(
        svc.db.sessions,
        svc.gateway.router.executor,
        svc.gateway.catalog,
        entry.routing,
        options,
        progress=progress,
    )
    svc.config_changed(org_id)
    return RunOutcome(found, entry.routing.gates)


async def stored(svc: Services, org_ref: str) -> tuple[gate_store.GateSettings, list[ReportRow]]:
    org_id = await org_id_of(svc, org_ref)
    entry = await svc.gateway.registry.get(org_id)
    async with svc.db.session() as session:
        return await gate_store.gate_settings(session, org_id), await report(
            session, org_id, entry.routing.gates
        )
