"""Every benchmark under bench/ imports, and each one with options answers `--help`.

The benchmarks run outside the suite (they time things), so nothing else would notice a
script broken by a change elsewhere, such as a helper it imports being moved.
"""

from __future__ import annotations

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
