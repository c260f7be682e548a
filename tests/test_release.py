"""The release checklist (docs/release.md), where the suite can check it.

Settings documented and doc links resolving are `tests/server/test_settings_docs.py` and
`tests/test_docs.py`; migrations running down and up on both backends is
`tests/server/test_migrations.py`. Here: the checklist names those checks, `make test` and the
benchmarks to re-run, and they exist; every migration has a real downgrade; every doc is
linked from README's docs list; CHANGELOG.md is in Keep a Changelog form; every dependency the
installs take is pinned in constraints.txt, and the installs use it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "docs" / "release.md"
MIGRATIONS = ROOT / "server" / "migrations" / "versions"


def test_the_checklist_names_make_test_the_checks_and_the_benchmarks_and_they_exist() -> None:
    text = RELEASE.read_text()
    assert "`make test`" in text
    assert re.search(r"^test:", (ROOT / "Makefile").read_text(), re.MULTILINE)
    for path in (
        "tests/server/test_settings_docs.py",
        "tests/test_docs.py",
        "tests/server/test_migrations.py",
        "tests/test_release.py",
        "bench/gateway.py",
        "bench/voice.py",
    ):
        assert f"`{path}`" in text, f"docs/release.md should name {path}"
        assert (ROOT / path).is_file(), path


def _downgrade_body(path: Path) -> list[ast.stmt]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            return node.body
    raise AssertionError(f"{path.name} has no downgrade()")


def test_every_migration_has_a_downgrade_that_does_something() -> None:
    files = sorted(p for p in MIGRATIONS.glob("0*.py"))
    assert files
    hollow = []
    for path in files:
        body = [
            s
            for s in _downgrade_body(path)
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        if not body or all(isinstance(s, ast.Pass) for s in body):
            hollow.append(path.name)
    assert hollow == [], f"these migrations cannot be rolled back: {hollow}"


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{p.name})" not in readme]
    assert missing == [], f"link these from README's docs list: {missing}"


def test_the_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.MULTILINE)
    sections = set(re.findall(r"^### (\w+)$", text, re.MULTILINE))
    assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} should be name==version"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_dependency_the_installs_take_is_pinned_within_what_pyproject_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    wanted += project["optional-dependencies"]["offline-voice"]
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run `make constraints`, then `make test`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement.specifier}"
        )


def test_the_installs_and_the_image_use_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "install -q" in line and "-e '." in line]
    assert len(installs) == 2 and all("$(CONSTRAINTS)" in line for line in installs), installs
    assert "CONSTRAINTS := -c constraints.txt" in makefile
    assert re.search(r"^constraints:", makefile, re.MULTILINE)
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    assert "pip install -c constraints.txt '.[offline-voice]'" in dockerfile
