"""`routing.conformance.evidence`: fresh results that pass propose their capability, failed and
stale ones do not, and `connection test`'s proposals take them before the catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from providers.contract import Capability
from routing.capability_proposals import propose
from routing.catalog import default_catalog
from routing.conformance.evidence import MeasuredCapabilities
from routing.conformance.suite import CORE
from routing.conformance.tables import ConformanceResult


def _row(model: str, capability: str, passed: int, *, version: int = CORE.version) -> ConformanceResult:
    return ConformanceResult(
        connection_id="conn_a",
        model=model,
        suite=CORE.name,
        suite_version=version,
        capability=capability,
        cases=20,
        passed=passed,
        cost_micro_usd=0,
        failures={},
        run_id="r",
        measured_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_passed_capabilities_are_evidence_failed_and_stale_ones_are_not() -> None:
    rows = [
        _row("good", "tools", 20),
        _row("good", "json", 20),
        _row("sloppy", "tools", 15),  # 75 % < the 95 % default
        _row("sloppy", "refusal", 20),  # measured, but not a capability a model declares
        _row("old", "tools", 20, version=CORE.version + 1),
    ]
    evidence = MeasuredCapabilities(rows)
    assert evidence.capabilities("good") == {Capability.TEXT, Capability.TOOLS, Capability.JSON}
    assert evidence.capabilities("sloppy") == {Capability.TEXT}
    assert evidence.capabilities("old") is None
    assert evidence.capabilities("never") is None


def test_measured_results_come_before_the_catalog_in_proposals() -> None:
    evidence = MeasuredCapabilities([_row("gpt-4o-mini", "tools", 3)])
    found = propose("openai", ["gpt-4o-mini", "gpt-4o"], [], default_catalog(), evidence)
    assert [(p.spec, p.source) for p in found] == [
        ("gpt-4o-mini:text", "conformance"),
        ("gpt-4o:json,text,tools,vision", "catalog"),
    ]
