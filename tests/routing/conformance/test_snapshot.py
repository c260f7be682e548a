"""Gates as the snapshot builds them from rows: the org's switch, thresholds and overrides, and
per (connection, model, capability) a fresh result before a stale one, then the newest."""

from __future__ import annotations

from datetime import UTC, datetime

from routing.conformance.snapshot import org_gates
from routing.conformance.suite import CORE
from routing.conformance.tables import ConformanceResult
from routing.tables import OrgAISettings

T = datetime(2026, 12, 1, tzinfo=UTC)


def _row(version: int, passed: int, day: int, capability: str = "tools") -> ConformanceResult:
    return ConformanceResult(
        connection_id="conn_a",
        model="m",
        suite=CORE.name,
        suite_version=version,
        capability=capability,
        cases=20,
        passed=passed,
        cost_micro_usd=0,
        failures={},
        run_id="r",
        measured_at=T.replace(day=day),
    )


def test_fresh_results_win_over_newer_stale_ones_and_settings_apply() -> None:
    settings = OrgAISettings(
        org_id="org_1",
        routing={},
        conformance_gates=True,
        conformance_thresholds={"tools": 0.5},
        conformance_overrides=[{"connection": "openai:main", "model": "m", "capability": "json"}],
    )
    rows = [_row(CORE.version, 10, 1), _row(CORE.version + 7, 20, 5), _row(CORE.version, 12, 3)]
    warnings: list[str] = []
    gates = org_gates(settings, rows, warnings)
    measured = gates.results[("conn_a", "m")]["tools"]
    assert (measured.rate, measured.stale) == (0.6, False)
    assert gates.enabled and gates.threshold("tools") == 0.5 and gates.threshold("json") == 0.98
    assert gates.overrides == frozenset({("openai:main", "m", "json")})
    assert warnings == []


def test_only_stale_results_read_as_stale_and_no_settings_means_off() -> None:
    gates = org_gates(None, [_row(CORE.version - 1, 20, 2)], [])
    assert gates.results[("conn_a", "m")]["tools"].stale
    assert not gates.enabled


def test_bad_stored_thresholds_are_a_warning_not_an_outage() -> None:
    settings = OrgAISettings(org_id="org_1", routing={}, conformance_thresholds={"tools": 95})
    warnings: list[str] = []
    assert org_gates(settings, [], warnings).threshold("tools") == 0.95
    assert warnings and "conformance thresholds ignored" in warnings[0]
