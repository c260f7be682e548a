"""`routing.capability_proposals`: measured results first, then the catalog, else text only."""

from __future__ import annotations

from providers.contract import Capability
from routing.capability_proposals import proposal_lines, propose
from routing.catalog import default_catalog

CATALOG = default_catalog()


class Measured:
    """The seam the conformance harness fills: what a model passed."""

    def capabilities(self, model: str) -> frozenset[Capability] | None:
        return frozenset({Capability.TEXT, Capability.TOOLS}) if model == "llama-3-70b" else None


def test_catalog_of_the_connections_provider_then_of_any_provider_then_unknown() -> None:
    found = propose("openai", ["gpt-4o-mini"], [], CATALOG)
    assert [(p.spec, p.source) for p in found] == [("gpt-4o-mini:json,text,tools,vision", "catalog")]
    elsewhere = propose("openai_compatible", ["gpt-4o-mini", "mystery"], [], CATALOG)
    assert [(p.spec, p.source) for p in elsewhere] == [
        ("gpt-4o-mini:json,text,tools,vision", "catalog:openai"),
        ("mystery:text", "unknown"),
    ]


def test_measured_capabilities_win_and_declared_models_not_listed_are_kept() -> None:
    found = propose(
        "openai_compatible",
        ["llama-3-70b"],
        [{"id": "llama-3-70b", "capabilities": ["text"]}, {"id": "old", "capabilities": ["text"]}],
        CATALOG,
        Measured(),
    )
    assert [(p.spec, p.source, p.listed, p.differs) for p in found] == [
        ("llama-3-70b:text,tools", "conformance", True, True),
        ("old:text", "unknown", False, False),
    ]
    assert proposal_lines(found) == [
        "  llama-3-70b:text,tools\t(conformance; declared now: text)",
        "  old:text\t(unknown; declared, not listed by the endpoint)",
    ]
