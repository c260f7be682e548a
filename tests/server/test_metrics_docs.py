"""docs/metrics.md lists every metric we export, and the Grafana dashboard queries only those."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from foundation import metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"\bpatchbay_[a-z0-9_]+")


def exported() -> dict[str, set[str]]:
    """Each metric's exposed name (counters end in `_total`) and the sample names it yields."""
    out: dict[str, set[str]] = {}
    for item in vars(metrics).values():
        if isinstance(item, Counter):
            out[item._name + "_total"] = {item._name + "_total"}
        elif isinstance(item, Histogram):
            out[item._name] = {item._name + s for s in ("_bucket", "_count", "_sum")}
        elif isinstance(item, Gauge):
            out[item._name] = {item._name}
    return out


def test_every_metric_is_documented() -> None:
    documented = set(_NAME.findall((DOCS / "metrics.md").read_text()))
    names = set(exported())
    assert len(names) == 26
    assert names <= documented, names - documented
    samples = set().union(*exported().values())
    assert documented <= names | samples, documented - names - samples  # no stale names in the doc


def test_dashboard_queries_name_only_metrics_that_exist() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    samples = set().union(*exported().values())
    assert used and used <= samples, used - samples
    # Every metric has a panel.
    assert {name for name, yields in exported().items() if yields & used} == set(exported())
