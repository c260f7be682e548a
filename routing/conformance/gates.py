"""Enablement gates: thresholds per capability and the check the resolver makes per candidate.

Pure and in memory: `OrgGates` is part of the routing snapshot (built from stored results by
`routing.snapshot`), so resolving never reads the database. With the org's gates off nothing is
skipped. With them on, a candidate is skipped with `skipped:gate:<capability>` for the first
capability the request needs (of `GATED`) whose pass rate is below the org's threshold, or that
was never measured on that connection and model, or whose result is stale (measured by another
suite version). An operator override lets one (connection, model, capability) through anyway.
Defaults are documented in docs/conformance.md#thresholds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from foundation.errors import RequestError
from providers.contract import Capability

GATED: tuple[Capability, ...] = (Capability.TOOLS, Capability.JSON, Capability.VISION, Capability.AUDIO_IN)
"""Capabilities a request can need that the suite measures, in the order they are checked."""

DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"tools": 0.95, "json": 0.98, "refusal": 0.90, "vision": 0.90, "audio_in": 0.90}
)

Gate = Literal["pass", "fail"]


def gate(rate: float, threshold: float) -> Gate:
    return "pass" if rate >= threshold else "fail"


def parse_thresholds(raw: Mapping[str, object] | None) -> dict[str, float]:
    """An org's threshold overrides (`{"tools": 0.9}`, fractions in [0, 1]); refused with the list
    of capabilities when a name or value is wrong."""
    out: dict[str, float] = {}
    for name, value in (raw or {}).items():
        if name not in DEFAULT_THRESHOLDS:
            raise RequestError(
                f"no conformance capability {name!r}; thresholds exist for {', '.join(DEFAULT_THRESHOLDS)}",
                param="conformance_thresholds",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise RequestError(
                f"the {name} threshold must be a fraction between 0 and 1 (0.95 is 95 %), not {value!r}",
                param="conformance_thresholds",
            )
        out[name] = float(value)
    return out


@dataclass(frozen=True, slots=True)
class Measured:
    rate: float
    cases: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class OrgGates:
    enabled: bool = False
    thresholds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    results: Mapping[tuple[str, str], Mapping[str, Measured]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """(connection id, model) -> capability -> the freshest stored result."""
    overrides: frozenset[tuple[str, str, str]] = frozenset()
    """(profile id, model, capability) the operator let through whatever was measured."""

    def threshold(self, capability: str) -> float:
        return self.thresholds.get(capability, DEFAULT_THRESHOLDS.get(capability, 1.0))

    def blocked(
        self, connection_id: str, profile_id: str, model: str, needs: Collection[Capability]
    ) -> Capability | None:
        """The first needed capability whose gate does not let this candidate through, or None."""
        if not self.enabled:
            return None
        measured = self.results.get((connection_id, model), {})
        for capability in GATED:
            if capability not in needs or (profile_id, model, capability.value) in self.overrides:
                continue
            result = measured.get(capability.value)
            if result is None or result.stale or result.rate < self.threshold(capability.value):
                return capability
        return None


GATES_OFF = OrgGates()
