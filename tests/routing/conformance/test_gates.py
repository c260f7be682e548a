"""Gates as the resolver applies them: off skips nothing; on skips a failed, unmeasured or stale
capability with `skipped:gate:<capability>`; the override lets one through; thresholds parse."""

from __future__ import annotations

import dataclasses

import pytest

from foundation.errors import RequestError
from providers.contract import Capability
from routing.catalog import default_catalog
from routing.conformance.gates import Measured, OrgGates, parse_thresholds
from routing.intents import Intent
from routing.model import OrgRouting
from routing.resolver import PlannedAttempt, Resolver, RouteRequest
from routing.trace import TraceEntry
from tests.routing.fakes import OrgBuilder, conn

TOOLS = RouteRequest(needs=frozenset({Capability.TOOLS}))
resolver = Resolver(default_catalog())


def _org(gates: OrgGates) -> OrgRouting:
    b = OrgBuilder(
        connections=[conn("openai", "main"), conn("anthropic", "default")],
        matrix={Intent.CHAT: ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5")},
    )
    return dataclasses.replace(b.build(), gates=gates)


def _labels(gates: OrgGates, request: RouteRequest = TOOLS) -> list[str]:
    plan = resolver.plan(_org(gates), request, {}, 0.0)
    return [
        f"{i.connection.profile_id}=try" if isinstance(i, PlannedAttempt) else f"{i.profile_id}={i.label}"
        for i in plan.items
        if isinstance(i, PlannedAttempt | TraceEntry)
    ]


MEASURED = {
    ("conn_openai_main", "gpt-4o-mini"): {"tools": Measured(0.8, 20)},
    ("conn_anthropic_default", "claude-haiku-4-5"): {"tools": Measured(1.0, 20)},
}


def test_gates_off_skip_nothing_even_after_a_failure() -> None:
    assert _labels(OrgGates(enabled=False, results=MEASURED)) == ["openai:main=try", "anthropic:default=try"]


def test_a_failed_gate_is_skipped_for_a_request_that_needs_it_only() -> None:
    gates = OrgGates(enabled=True, results=MEASURED)
    assert _labels(gates) == ["openai:main=skipped:gate:tools", "anthropic:default=try"]
    # A plain chat request needs no tools: the tools gate does not apply.
    assert _labels(gates, RouteRequest()) == ["openai:main=try", "anthropic:default=try"]


def test_never_measured_and_stale_are_skipped_when_gates_are_on() -> None:
    stale = {("conn_anthropic_default", "claude-haiku-4-5"): {"tools": Measured(1.0, 20, stale=True)}}
    assert _labels(OrgGates(enabled=True, results=stale)) == [
        "openai:main=skipped:gate:tools",
        "anthropic:default=skipped:gate:tools",
    ]


def test_thresholds_and_the_operator_override() -> None:
    lenient = OrgGates(enabled=True, results=MEASURED, thresholds={"tools": 0.75})
    assert _labels(lenient) == ["openai:main=try", "anthropic:default=try"]
    overridden = OrgGates(
        enabled=True, results=MEASURED, overrides=frozenset({("openai:main", "gpt-4o-mini", "tools")})
    )
    assert _labels(overridden) == ["openai:main=try", "anthropic:default=try"]


def test_threshold_parsing_names_the_problem() -> None:
    assert parse_thresholds({"tools": 0.9, "json": 1}) == {"tools": 0.9, "json": 1.0}
    with pytest.raises(RequestError, match="thresholds exist for tools, json"):
        parse_thresholds({"speed": 0.5})
    with pytest.raises(RequestError, match="between 0 and 1"):
        parse_thresholds({"tools": 95})
