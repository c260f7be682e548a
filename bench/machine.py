"""What the rest of the machine did while a benchmark ran: CPU outside the benchmark's processes.

A shared or virtual machine runs other things (a database's housekeeping, a message broker's
periodic checks, another job), and a burst of theirs shows in a real-time benchmark as late
frames while hardly moving an average. `OtherCpu(root)` samples, every 0.5 s in a thread of
its own, the machine's busy time (`/proc/stat`, steal included) and the CPU of `root` and the
processes below it at `start()` (`/proc/<pid>/stat`); what is left is the other processes',
short-lived ones included, which is the point: those are the bursts nothing else sees.
`stop()` gives the mean over the run and the busiest half second, in % of one core. The kernel
counts in ticks of 10 ms, so one window's figure is good to about 10 % of a core; a burst of
150 ms of CPU stands out. Each sample reads a handful of small files. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of `/proc/<pid>/stat` after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_pids(root: int) -> set[int]:
    """`root` and its live descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry)] = int(_stat_fields(entry)[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier += children
    return tree


def _machine() -> tuple[float, float]:
    """The whole machine's busy and steal time since boot, in seconds over all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return (sum(fields[:3]) + sum(fields[5:8])) / _TICK, fields[7] / _TICK


@dataclass(frozen=True)
class OtherFigures:
    other_s: float
    """CPU time processes outside the tree used, all cores together."""
    mean_pct: float
    peak_pct: float
    """The most they used in one sampling window (0.5 s), in % of one core."""
    steal_pct: float
    """Time the hypervisor gave the vCPUs to someone else, in % of one core."""


class OtherCpu:
    """CPU outside `root`'s process tree (as it stood at `start()`), sampled in a thread."""

    def __init__(self, root: int, *, interval: float = 0.5) -> None:
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: dict[int, float] = {}
        self._peak = 0.0
        self._first: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _ours(self) -> float:
        """The tree's CPU so far; a process that ended keeps the last figure read."""
        for pid in self._cpu:
            with contextlib.suppress(OSError):
                fields = _stat_fields(pid)
                self._cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
        return sum(self._cpu.values())

    def _sample(self) -> tuple[float, float, float]:
        ours = self._ours()
        busy, steal = _machine()
        return time.monotonic(), busy - ours, steal

    def start(self) -> None:
        self._cpu = dict.fromkeys(tree_pids(self._root), 0.0)
        self._first = self._sample()
        self._thread = threading.Thread(target=self._run, name="other-cpu", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = self._first
        while not self._stop.wait(self._interval):
            now = self._sample()
            self._peak = max(self._peak, 100 * (now[1] - last[1]) / (now[0] - last[0]))
            last = now

    def stop(self) -> OtherFigures:
        assert self._thread is not None, "start() first"
        self._stop.set()
        self._thread.join()
        end = self._sample()
        seconds = end[0] - self._first[0]
        other = max(0.0, end[1] - self._first[1])
        return OtherFigures(
            other_s=other,
            mean_pct=100 * other / seconds,
            peak_pct=self._peak,
            steal_pct=100 * (end[2] - self._first[2]) / seconds,
        )
