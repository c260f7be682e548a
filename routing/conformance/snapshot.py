"""An org's gates for its routing snapshot, from its settings row and stored results. Pure.

Per (connection, model, capability) the freshest result wins: one of the current suite version
before a stale one, then the latest measured. A result is stale when the suite that measured it
now has another version (or is no longer shipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from foundation.errors import RequestError
from routing.conformance.gates import DEFAULT_THRESHOLDS, Measured, OrgGates, parse_thresholds
from routing.conformance.suite import current_version
from routing.conformance.tables import ConformanceResult
from routing.rows import AISettingsRecord


def is_stale(row: ConformanceResult) -> bool:
    return current_version(row.suite) != row.suite_version


def org_gates(
    settings: AISettingsRecord | None, results: Sequence[ConformanceResult], warnings: list[str]
) -> OrgGates:
    thresholds = dict(DEFAULT_THRESHOLDS)
    if settings is not None and settings.conformance_thresholds:
        try:
            thresholds.update(parse_thresholds(settings.conformance_thresholds))
        except RequestError as exc:
            warnings.append(f"conformance thresholds ignored: {exc}")
    chosen: dict[tuple[str, str, str], ConformanceResult] = {}
    for row in results:
        key = (row.connection_id, row.model, row.capability)
        held = chosen.get(key)
        if held is None or (is_stale(held), -held.measured_at.timestamp()) > (
            is_stale(row),
            -row.measured_at.timestamp(),
        ):
            chosen[key] = row
    measured: dict[tuple[str, str], dict[str, Measured]] = {}
    for (conn_id, model, capability), row in chosen.items():
        rate = row.passed / row.cases if row.cases else 0.0
        measured.setdefault((conn_id, model), {})[capability] = Measured(rate, row.cases, is_stale(row))
    overrides = frozenset(
        (str(o.get("connection")), str(o.get("model")), str(o.get("capability")))
        for o in (settings.conformance_overrides or [] if settings else [])
        if isinstance(o, dict)
    )
    return OrgGates(
        enabled=bool(settings and settings.conformance_gates),
        thresholds=MappingProxyType(thresholds),
        results=MappingProxyType({k: MappingProxyType(v) for k, v in measured.items()}),
        overrides=overrides,
    )
