"""Stored conformance results: write a run's scores, read them for the snapshot and the report.

Saving replaces the rows of each (connection, model, suite, suite version, capability) and bumps
the config version of the org that owns the connection (the platform's for a platform
connection), so every process rebuilds its snapshot, and with it the gates, within its config
poll. Nothing here holds a prompt or a model's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.db import utcnow
from routing.config_versions import bump
from routing.conformance.gates import OrgGates, gate
from routing.conformance.scoring import Score
from routing.conformance.snapshot import is_stale
from routing.conformance.tables import ConformanceResult
from routing.platform import PLATFORM_SCOPE
from routing.tables import Connection

_READ_BATCH = 500


async def load_results(session: AsyncSession, connection_ids: Sequence[str]) -> list[ConformanceResult]:
    ids = list(connection_ids)
    rows: list[ConformanceResult] = []
    for start in range(0, len(ids), _READ_BATCH):
        batch = ids[start : start + _READ_BATCH]
        rows.extend(
            await session.scalars(select(ConformanceResult).where(ConformanceResult.connection_id.in_(batch)))
        )
    return rows


async def save_scores(
    session: AsyncSession,
    connection_id: str,
    owner: str | None,
    run: tuple[str, int, str],
    scores: Sequence[Score],
) -> None:
    """Replace the stored scores of this run's keys, in the caller's transaction. `owner`: the
    connection's org (None for a platform connection); `run`: (suite, suite version, run id)."""
    suite, version, run_id = run
    now = utcnow()
    for s in scores:
        await session.execute(
            delete(ConformanceResult).where(
                ConformanceResult.connection_id == connection_id,
                ConformanceResult.model == s.model,
                ConformanceResult.suite == suite,
                ConformanceResult.suite_version == version,
                ConformanceResult.capability == s.capability,
            )
        )
        session.add(
            ConformanceResult(
                connection_id=connection_id,
                model=s.model,
                suite=suite,
                suite_version=version,
                capability=s.capability,
                cases=s.cases,
                passed=s.passed,
                ttft_ms=s.ttft_ms,
                total_ms=s.total_ms,
                tokens_per_s=s.tokens_per_s,
                cost_micro_usd=s.cost_micro_usd,
                failures=dict(s.failures),
                run_id=run_id,
                measured_at=now,
            )
        )
    await bump(session, owner or PLATFORM_SCOPE)


@dataclass(frozen=True, slots=True)
class ReportRow:
    connection: str
    """The profile id, `provider:name`."""
    platform: bool
    model: str
    capability: str
    suite: str
    suite_version: int
    cases: int
    passed: int
    rate: float
    threshold: float
    gate: str
    """`pass`, `fail`, or `stale` (measured by another suite version: run the suite again)."""
    stale: bool
    ttft_ms: float | None
    total_ms: float | None
    tokens_per_s: float | None
    cost_micro_usd: int
    failures: dict[str, Any]
    measured_at: datetime


async def report(session: AsyncSession, org_id: str, gates: OrgGates) -> list[ReportRow]:
    """Every stored result of the org's connections and the platform's, newest first."""
    rows = await session.execute(
        select(ConformanceResult, Connection)
        .join(Connection, Connection.id == ConformanceResult.connection_id)
        .where(or_(Connection.org_id == org_id, Connection.org_id.is_(None)))
        .order_by(
            ConformanceResult.measured_at.desc(),
            Connection.provider,
            Connection.name,
            ConformanceResult.model,
        )
    )
    out = []
    for result, conn in rows:
        rate = result.passed / result.cases if result.cases else 0.0
        threshold = gates.threshold(result.capability)
        stale = is_stale(result)
        out.append(
            ReportRow(
                connection=conn.profile_id,
                platform=conn.org_id is None,
                model=result.model,
                capability=result.capability,
                suite=result.suite,
                suite_version=result.suite_version,
                cases=result.cases,
                passed=result.passed,
                rate=round(rate, 4),
                threshold=threshold,
                gate="stale" if stale else gate(rate, threshold),
                stale=stale,
                ttft_ms=result.ttft_ms,
                total_ms=result.total_ms,
                tokens_per_s=result.tokens_per_s,
                cost_micro_usd=result.cost_micro_usd,
                failures=dict(result.failures or {}),
                measured_at=result.measured_at,
            )
        )
    return out
