"""Every benchmark under bench/ imports, and each one with options answers `--help`.

The benchmarks run outside the suite (they time things), so nothing else would notice a
script broken by a change elsewhere, such as a helper it imports being moved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))
WITH_OPTIONS = [path for path in SCRIPTS if "argparse" in path.read_text()]


def test_every_benchmark_module_imports() -> None:
    names = [f"bench.{path.stem}" for path in SCRIPTS if path.stem != "__init__"]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", WITH_OPTIONS, ids=lambda path: path.name)
def test_the_benchmark_answers_help(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


def test_the_worker_census_splits_memory_by_where_it_lives() -> None:
    # In a fresh interpreter: in this one, threads other tests left (servers shutting down) free
    # C-heap memory while the test allocates, and the difference read is short of what it made.
    code = """
import json
from bench.voice_worker import census

before = census(top=5)["memory"]
small = [bytearray(64) for _ in range(20_000)]  # Python's small-object blocks
large = [bytes(4096) for _ in range(500)]  # 2 MB from the C heap
after = census(top=5)
print(json.dumps({"before": before, "after": after}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    read = json.loads(done.stdout)
    before, after = read["before"], read["after"]
    assert len(after["types"]) == 5 and after["tracked"] > 0
    grown = after["memory"]
    assert grown["python_blocks"] >= before["python_blocks"] + 20_000
    if grown["c_heap_in_use_bytes"] is not None:  # glibc
        assert grown["c_heap_in_use_bytes"] >= before["c_heap_in_use_bytes"] + 500 * 4096
    assert grown["sqlite_bytes"] is None or grown["sqlite_bytes"] >= 0
    assert grown["rss_mb"] > 0


def test_the_worker_probe_keeps_loop_lag_in_bounded_buckets() -> None:
    from types import SimpleNamespace

    from bench.voice_worker import LAG_BUCKETS, WorkerProbe
    from voice.latency import LatencyStats

    probe = WorkerProbe(SimpleNamespace(sessions=SimpleNamespace(total=0), stats=LatencyStats()))
    assert probe.figures()["lag_p99_ms"] == 0.0
    for lag_ms in [0.04] * 98 + [2.54, 7.34, 5_000.0]:
        probe.loop_lag(lag_ms)
    assert len(probe.lag) == LAG_BUCKETS + 1  # however many samples
    figures = probe.figures()
    assert figures["lag_p99_ms"] == 7.4  # the 100th of 101 samples, by its 0.1-ms bucket's upper edge
    assert figures["lag_max_ms"] == 5_000.0


_BURN = (
    "import sys, time\n"
    "sys.stdin.readline()\n"
    "while time.process_time() < 0.4:\n"
    "    pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.readline()\n"
)


def _burner() -> subprocess.Popen[str]:
    """A child that burns 0.4 s of CPU when told to, says so, and waits to be let go."""
    return subprocess.Popen(
        [sys.executable, "-c", _BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> None:
    proc.communicate("go\n", timeout=60)  # closes its pipes
    assert proc.returncode == 0


def test_cpu_of_the_benchmarks_own_processes_is_not_counted_as_other() -> None:
    from bench.machine import OtherCpu

    burner, bystander = _burner(), _burner()  # both below this process; the bystander only waits
    try:
        assert burner.stdin is not None and burner.stdout is not None
        mine, theirs = OtherCpu(os.getpid(), interval=0.05), OtherCpu(bystander.pid, interval=0.05)
        # The bystander's window holds this one (opened first, closed last): whatever else the
        # machine runs while a start or stop reads /proc only adds to its side of the difference.
        theirs.start()
        mine.start()
        burner.stdin.write("go\n")
        burner.stdin.flush()
        assert burner.stdout.readline() == "burnt\n"  # still alive: in the tree at both ends
        seen_from_here, seen_from_bystander = mine.stop(), theirs.stop()
        # From the bystander's tree the burner is someone else's; from this one it is ours.
        assert seen_from_bystander.other_s - seen_from_here.other_s >= 0.3
        assert seen_from_bystander.peak_pct >= seen_from_bystander.mean_pct > 0
    finally:
        _finish(burner)
        bystander.kill()
        bystander.communicate(timeout=60)


def test_a_process_that_came_and_went_while_sampling_counts_as_other() -> None:
    from bench.machine import OtherCpu

    others = OtherCpu(os.getpid(), interval=0.05)
    others.start()
    burner = _burner()  # born after the sampling started, gone before it stops
    assert burner.stdout is not None and burner.stdin is not None
    burner.stdin.write("go\n")
    burner.stdin.flush()
    assert burner.stdout.readline() == "burnt\n"
    _finish(burner)
    figures = others.stop()
    assert figures.other_s >= 0.3
    assert figures.peak_pct >= figures.mean_pct
