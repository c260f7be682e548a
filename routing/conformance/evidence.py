"""What conformance runs say a connection's models can do, for `connection test`'s proposals.

A model measured by the current suite version is proposed with `text` plus every measured
capability whose pass rate reaches the default threshold (docs/conformance.md#thresholds); a
capability it failed is left out even when the catalog lists it. Stale results (another suite
version) are not evidence. Pure over the rows `routing.conformance.store.load_results` reads;
it satisfies `routing.capability_proposals.CapabilityEvidence`.
"""

from __future__ import annotations

from collections.abc import Sequence

from providers.contract import Capability
from routing.conformance.gates import DEFAULT_THRESHOLDS, GATED
from routing.conformance.snapshot import is_stale
from routing.conformance.tables import ConformanceResult

_MEASURED = {c.value: c for c in GATED}


class MeasuredCapabilities:
    """`capabilities(model)`: measured and passed, or None when the model has no fresh result."""

    def __init__(self, results: Sequence[ConformanceResult]) -> None:
        self._passed: dict[str, set[Capability]] = {}
        for row in results:
            if is_stale(row):
                continue
            caps = self._passed.setdefault(row.model, {Capability.TEXT})
            capability = _MEASURED.get(row.capability)
            if (
                capability is not None
                and row.cases
                and row.passed / row.cases >= DEFAULT_THRESHOLDS[row.capability]
            ):
                caps.add(capability)

    def capabilities(self, model: str) -> frozenset[Capability] | None:
        caps = self._passed.get(model)
        return frozenset(caps) if caps is not None else None
