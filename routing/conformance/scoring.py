"""Score a run: case outcomes in, one `Score` per (model, capability) out. Pure.

Latency figures are medians over the capability's cases (TTFT over the streamed ones only);
tokens per second is output tokens over the time after the first output; cost is the sum at
list price. A report entry adds the org's threshold and the gate (`pass` or `fail`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.conformance.checks import Observation
from routing.conformance.gates import gate


@dataclass(frozen=True, slots=True)
class Outcome:
    case_id: str
    capability: str
    observation: Observation
    failure: str | None
    cost_micro_usd: int = 0


@dataclass(frozen=True, slots=True)
class Score:
    model: str
    capability: str
    cases: int
    passed: int
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    cost_micro_usd: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.passed / self.cases if self.cases else 0.0

    def entry(self, threshold: float, **extra: Any) -> dict[str, Any]:
        """The `--json` / API entry: model, capability, cases, passed, rate, threshold, gate and figures."""
        return {
            "model": self.model,
            "capability": self.capability,
            "cases": self.cases,
            "passed": self.passed,
            "rate": round(self.rate, 4),
            "threshold": threshold,
            "gate": gate(self.rate, threshold),
            "ttft_ms": _round(self.ttft_ms),
            "total_ms": _round(self.total_ms),
            "tokens_per_s": _round(self.tokens_per_s),
            "cost_micro_usd": self.cost_micro_usd,
            "failures": dict(self.failures),
            **extra,
        }


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return statistics.median(found) if found else None


def score(model: str, outcomes: Iterable[Outcome]) -> list[Score]:
    """One score per capability, in the order capabilities first appear."""
    by_capability: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_capability.setdefault(outcome.capability, []).append(outcome)
    scores = []
    for capability, found in by_capability.items():
        observed = [o.observation for o in found]
        speeds = [
            o.usage.output_tokens * 1000 / (o.total_ms - o.ttft_ms)
            for o in observed
            if o.ttft_ms is not None and o.total_ms > o.ttft_ms and o.usage.output_tokens
        ]
        scores.append(
            Score(
                model=model,
                capability=capability,
                cases=len(found),
                passed=sum(1 for o in found if o.failure is None),
                ttft_ms=_median(o.ttft_ms for o in observed if o.ttft_ms is not None),
                total_ms=_median(o.total_ms for o in observed),
                tokens_per_s=_median(speeds),
                cost_micro_usd=sum(o.cost_micro_usd for o in found),
                failures=dict(Counter(o.failure for o in found if o.failure is not None)),
            )
        )
    return scores
