"""A conformance run for one org: pick the targets, run the suite on each, score, store.

Targets are the org's active connections as its snapshot sees them (its own and the platform
connections it may use), narrowed by `connection` (a profile id `provider:name` or a connection
id) and `model` (a model id, or a ref `provider/model`). A connection's models are the ones it
declares, else those of its last model list the catalog knows; a connection with neither needs
`model`. Results are saved per (connection, model, suite version) and the owning org's config
version is bumped, so gates everywhere follow within a config poll (docs/conformance.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.db import new_id
from foundation.errors import NotFoundError, RequestError
from providers.contract import ModelRef
from routing.catalog import Catalog
from routing.conformance.gates import OrgGates
from routing.conformance.harness import Progress, UnreachableError, run_model
from routing.conformance.scoring import Score, score
from routing.conformance.store import save_scores
from routing.conformance.suite import SUITES, Suite
from routing.executor import Executor
from routing.model import ConnectionStatus, ConnectionView, OrgRouting
from routing.resolver import PlannedAttempt

MAX_RUNS = 20
"""How many times `runs` may repeat the suite: a run is bounded in calls, hence in cost."""


class UnknownSuiteError(NotFoundError):
    code = "unknown_suite"


@dataclass(frozen=True, slots=True)
class RunOptions:
    connection: str | None = None
    model: str | None = None
    suite: str = "core"
    runs: int = 1


@dataclass(frozen=True, slots=True)
class ModelResult:
    connection: str
    model: str
    scores: tuple[Score, ...] = ()
    error: str | None = None
    """Why the model could not be measured at all (`failed:guard:...`, `failed:credential`)."""


@dataclass
class RunReport:
    run_id: str
    org_id: str
    suite: str
    suite_version: int
    results: list[ModelResult] = field(default_factory=list)

    def entries(self, gates: OrgGates) -> list[dict[str, Any]]:
        """One entry per (model, capability) measured."""
        return [
            s.entry(gates.threshold(s.capability), connection=r.connection)
            for r in self.results
            for s in r.scores
        ]

    def passed(self, gates: OrgGates) -> bool:
        return all(e["gate"] == "pass" for e in self.entries(gates)) and not any(
            r.error for r in self.results
        )


def suite_named(name: str) -> Suite:
    suite = SUITES.get(name)
    if suite is None:
        raise UnknownSuiteError(
            f"no conformance suite {name!r}; the suites are {', '.join(SUITES)}", param="suite"
        )
    return suite


def targets(org: OrgRouting, catalog: Catalog, options: RunOptions) -> list[PlannedAttempt]:
    """The (connection, model) pairs to measure; refused with how to fix it when there are none."""
    seen: dict[str, ConnectionView] = {}
    for conn in (*org.all_connections(), *(c for cs in org.platform.values() for c in cs)):
        seen.setdefault(conn.connection_id, conn)
    conns = [c for c in seen.values() if c.status is ConnectionStatus.ACTIVE]
    if options.connection:
        wanted = options.connection.lower()
        conns = [c for c in conns if wanted in (c.profile_id.lower(), c.connection_id.lower())]
        if not conns:
            raise NotFoundError(
                f"no active connection {options.connection!r} in org {org.org_id}: give a profile id "
                "`provider:name` (`patchbay connection list --org ORG`)",
                param="connection",
            )
    found: list[PlannedAttempt] = []
    for conn in conns:
        for model in _models(conn, catalog, options.model):
            info = catalog.model_for(conn, model)
            if info is not None:
                ref = ModelRef(provider=conn.profile_id if not conn.is_custom else conn.name, model=model)
                found.append(PlannedAttempt(ref=ref, connection=conn, info=info, step=0))
    if not found:
        raise RequestError(
            "nothing to measure: no connection declares or lists a model"
            + (f" matching {options.model!r}" if options.model else "; give --model")
            + " (`patchbay connection test` lists what an endpoint serves)",
            param="model",
        )
    return found


def _models(conn: ConnectionView, catalog: Catalog, wanted: str | None) -> Sequence[str]:
    if wanted:
        head, slash, rest = wanted.partition("/")
        if not slash:
            return (wanted,)
        # `openrouter/moonshotai/kimi-k2`: the first part names the connection, the rest is the model id.
        if head.lower() not in {conn.provider.value, conn.profile_id.lower(), conn.name.lower()}:
            return ()
        model = rest
        return (model,)
    if conn.declared_models:
        return tuple(d.id for d in conn.declared_models)
    known = catalog.models.get(conn.provider, {})
    return tuple(sorted(m for m in conn.reported_models if m in known))


async def run_conformance(
    sessions: async_sessionmaker[AsyncSession],
    executor: Executor,
    catalog: Catalog,
    org: OrgRouting,
    options: RunOptions,
    *,
    progress: Progress | None = None,
) -> RunReport:
    suite = suite_named(options.suite)
    if not 1 <= options.runs <= MAX_RUNS:
        raise RequestError(f"runs must be between 1 and {MAX_RUNS}", param="runs")
    report = RunReport(new_id("crun"), org.org_id, suite.name, suite.version)
    for attempt in targets(org, catalog, options):
        conn = attempt.connection
        try:
            outcomes = await run_model(executor, attempt, suite, runs=options.runs, progress=progress)
        except UnreachableError as exc:
            report.results.append(ModelResult(conn.profile_id, attempt.model, error=exc.entry.label))
            continue
        scores = tuple(score(attempt.model, outcomes))
        async with sessions() as session:
            owner = None if conn.platform else conn.org_id
            await save_scores(
                session, conn.connection_id, owner, (suite.name, suite.version, report.run_id), scores
            )
            await session.commit()
        report.results.append(ModelResult(conn.profile_id, attempt.model, scores))
    return report
