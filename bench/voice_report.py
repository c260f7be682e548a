"""Part of bench/voice.py: the figures as a person reads them. One table row per level, and a
chart of server-added latency and frame delay against the number of sessions.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.voice_worker import LATE_MS

GOAL_P95_MS = 10.0


HEADER = (
    f"{'W':>2} {'N':>5} {'turns':>6} {'srv p50':>8} {'srv p95':>8} {'srv max':>8} {'late':>5} {'frames':>8} "
    f"{'delay p99':>9} {'delay max':>9} {'loop max':>8} {'srv cpu%':>8} {'gc%':>4} {'gc max':>6} {'us/frm':>6} "
    f"{'callers%':>8} {'other%':>6} {'oth pk%':>7} {'rss MB':>6} {'KB/ses':>6}  sessions/worker"
)


def row(r: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "nan" if value is None else f"{value:.2f}"

    return (
        f"{r['workers']:2d} {r['n']:5d} {r['turns']:6d} {ms(r['p50']):>8} {ms(r['p95']):>8} {ms(r['max']):>8} "
        f"{r['late']:5d} {r['frames']:8d} {r['delay_p99']:9.0f} {r['delay_max']:9.1f} {r['lag_max']:8.1f} "
        f"{r['server_cpu_pct']:8.1f} {r['gc_pct']:4.1f} {r['gc_max']:6.1f} {r['us_per_frame']:6.0f} {r['caller_cpu_pct']:8.1f} "
        f"{r['other_cpu_pct']:6.1f} {r['other_peak_pct']:7.0f} {r['rss_mb']:6.0f} {r['rss_per_session_kb']:6.0f}  {'/'.join(str(s) for s in r['sessions'])}"
    )


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')")
        return
    fig, (latency, delay) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, workers in enumerate(sorted({r["workers"] for r in rows})):
        mine = [r for r in rows if r["workers"] == workers and r["p95"] is not None]
        label = f"{workers} worker{'s' if workers > 1 else ''}"
        levels = sorted({r["n"] for r in mine})
        for axis, field, style, name in (
            (latency, "p95", "o-", "p95"),
            (latency, "p50", "x--", "p50"),
            (delay, "delay_max", "o-", "max"),
        ):
            colour = f"C{2 * index + (field == 'p50')}"
            # Every run as a point, the line through each level's median run.
            axis.plot([r["n"] for r in mine], [r[field] for r in mine], style[0], color=colour, alpha=0.5)
            medians = [statistics.median(r[field] for r in mine if r["n"] == n) for n in levels]
            axis.plot(levels, medians, style, color=colour, label=f"{name}, {label}")
    latency.axhline(GOAL_P95_MS, color="grey", linestyle=":", label=f"goal: p95 < {GOAL_P95_MS:.0f} ms")
    delay.axhline(LATE_MS, color="grey", linestyle=":", label=f"late: > {LATE_MS:.0f} ms")
    latency.set(xlabel="concurrent sessions", ylabel="server-added ms per turn", title="Server-added latency")
    delay.set(xlabel="concurrent sessions", ylabel="ms after its slot", title="Frame delay (worst frame)")
    for axis in (latency, delay):
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Realtime voice sessions on 2 cores (bench/voice.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")
