"""Imports run one way: server > voice > routing > billing > providers > foundation.

The contract lives in pyproject.toml (`[tool.importlinter]`) and `make test` runs it; these
tests run the same configuration on the tree, and on a copy of the tree with one forbidden
import added, so a contract that stopped catching anything would fail here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["server", "voice", "routing", "billing", "providers", "foundation"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on `root` with the pyproject.toml found there, in a fresh interpreter
    (so the packages are found under `root`, not in this process's already-imported modules)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--no-logo",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_configured_contract_is_the_architectures_order() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_packages"] == LAYERS
    [contract] = config["contracts"]
    assert contract["type"] == "layers" and contract["layers"] == LAYERS
    # An exception to the layering is a design decision: adding one should show up here.
    assert "ignore_imports" not in contract


def test_the_tree_keeps_the_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken", "edge"),
    [
        # A vendor module reaching up for the server's settings.
        (
            "providers/sse.py",
            "import server.settings\n",
            "providers is not allowed to import server",
            "providers.sse -> server.settings",
        ),
        # The ground floor importing the contract above it.
        (
            "foundation/db.py",
            "from providers import contract\n",
            "foundation is not allowed to import providers",
            "foundation.db -> providers.contract",
        ),
        # A lazy import inside a function counts as much as one at the top.
        (
            "voice/session.py",
            "\n\ndef _transport() -> object:\n    import server.realtime.wire\n\n"
            "    return server.realtime.wire\n",
            "voice is not allowed to import server",
            "voice.session -> server.realtime.wire",
        ),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, added: str, broken: str, edge: str
) -> None:
    for package in LAYERS:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as f:
        f.write(added)

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "0 kept, 1 broken" in result.stdout
    assert broken in result.stdout
    assert edge in result.stdout
