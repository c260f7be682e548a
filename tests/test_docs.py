"""Every reference to a document resolves: relative Markdown links (and their `#anchor`s) in
README.md and docs/*.md, and every `name.md` mentioned in code, config, scripts and docs.

A reference to a design note that never lived in this repository (or a section heading that
was renamed) reads as an explanation but leads nowhere; this keeps them from coming back.
Anchors are checked against GitHub's heading slugs, since that is where the docs are read.
The checker is tested first on a small synthetic tree, so a pass on the real one means
something.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]

SCANNED_SUFFIXES = {".py", ".js", ".html", ".toml", ".sh", ".md", ".ini", ".cfg", ".yml", ".yaml"}
SCANNED_NAMES = {"Makefile"}
# Not the project's own text: environments, caches, and the local data directory (a symlink
# in some checkouts) that holds downloaded models.
PRUNED_DIRS = {"var", "node_modules", "__pycache__", "build", "dist"}

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
# `name.md` or `some/path/name.md`, optionally `#anchor`, not inside a URL or a longer path.
_MENTION = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.md)(?:#([\w-]+))?\b")
# "name.md section 6", "name.md sections 2, 6 and 7": our docs do not number their headings.
_SECTIONS = re.compile(r"\s*,?\s*sections?\s+(\d+(?:\s*(?:,|and)\s*\d+)*)")


def _prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks, with inline code blanked."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        opener = _FENCE.match(line)
        if opener:
            marker = opener.group(1)
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            lines.append("")
            continue
        lines.append("" if fence else _INLINE_CODE.sub("", line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file offers: heading slugs (repeats get -1, -2, ...) and `<a id>`s."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    fence: str | None = None
    for line in text.splitlines():
        opener = _FENCE.match(line)
        if opener:
            marker = opener.group(1)
            fence = marker if fence is None else (None if marker == fence else fence)
            continue
        if fence:
            continue
        heading = _HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
        found.update(_HTML_ANCHOR.findall(line))
    return found


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    targets: list[tuple[int, str]] = []
    for number, line in enumerate(_prose_lines(text), start=1):
        targets.extend((number, target) for target in _LINK.findall(line))
        reference = _REFERENCE.match(line)
        if reference:
            targets.append((number, reference.group(1)))
    return targets


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def broken_links(doc: Path, root: Path) -> list[str]:
    """Relative links of `doc` whose file is missing, or whose `#anchor` names no heading there."""
    problems: list[str] = []
    for number, target in link_targets(doc.read_text()):
        if not target or _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{doc.relative_to(root)}:{number}: {target}"
        linked = (doc.parent / unquote(path_part)).resolve() if path_part else doc.resolve()
        if not _inside(linked, root.resolve()) or not linked.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked.read_text()):
            problems.append(f"{where} (no heading with that anchor)")
    return problems


def scanned_files(root: Path) -> list[Path]:
    """The project's own text files: code, config, scripts and docs."""
    files: list[Path] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in PRUNED_DIRS)
        for name in sorted(names):
            path = Path(directory) / name
            if path.suffix in SCANNED_SUFFIXES or name in SCANNED_NAMES:
                files.append(path)
    return files


def dangling_mentions(path: Path, root: Path) -> list[str]:
    """`name.md` mentions in `path` that name no file (beside it, at the root or in docs/),
    and `name.md#anchor` or `name.md section N` mentions that name no heading of that file."""
    problems: list[str] = []
    text = path.read_text(errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _MENTION.finditer(line):
            name, anchor = match.group(1), match.group(2)
            candidates = (root / name, root / "docs" / name, path.parent / name)
            found = next((c for c in candidates if c.is_file()), None)
            where = f"{path.relative_to(root)}:{number}: {match.group(0)}"
            if found is None:
                problems.append(f"{where} (no such document in this repository)")
            elif anchor and anchor not in anchors(found.read_text()):
                problems.append(f"{where} (no heading with that anchor)")
            elif sections := _SECTIONS.match(line, match.end()):
                offered = anchors(found.read_text())
                for number in re.findall(r"\d+", sections.group(1)):
                    if not any(a == number or a.startswith(number + "-") for a in offered):
                        problems.append(f"{where} (no section {number} there)")
    return problems


def markdown_docs(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_slugs_follow_github() -> None:
    assert github_slug("Extension headers") == "extension-headers"
    assert github_slug("`POST /v1/audio/speech`: the body") == "post-v1audiospeech-the-body"
    assert github_slug("Limits & quotas (per org)") == "limits--quotas-per-org"
    assert github_slug("[Usage](admin-api.md) per_org") == "usage-per_org"
    assert anchors("# A\n## A\n```\n# Not a heading\n```\n## A\n") == {"a", "a-1", "a-2"}


def test_the_checker_finds_broken_files_and_anchors(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "README.md": "See [the guide](docs/guide.md#set-up) and [gone](docs/gone.md).\n",
            "docs/guide.md": (
                "# Guide\n\n## Set up\n\n[ok](#guide), [bad anchor](#tear-down), [up](../README.md)\n"
                "![chart](img/missing.png) `[not a link](nowhere.md)`\n"
                "```\n[in a fence](nowhere.md)\n```\n[ref]: other.md#nope\n"
            ),
            "docs/other.md": "# Other\n",
        },
    )
    problems = [p for doc in markdown_docs(tmp_path) for p in broken_links(doc, tmp_path)]
    assert problems == [
        "README.md:1: docs/gone.md (no such file)",
        "docs/guide.md:5: #tear-down (no heading with that anchor)",
        "docs/guide.md:6: img/missing.png (no such file)",
        "docs/guide.md:10: other.md#nope (no heading with that anchor)",
    ]


def test_the_checker_finds_dangling_mentions_in_code(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "docs/routing.md": "# Routing\n\n## Catalog\n",
            "pkg/mod.py": (
                '"""See docs/routing.md#catalog, routing.md and design.md section 3."""\n'
                "# docs/routing.md#wiring; https://example.com/notes.md is a URL\n"
                "# routing.md sections 1 and 2\n"
            ),
            "Makefile": "# the steps in docs/release.md\n",
            "var/models/README.md": "docs/ignored.md: the data directory is not ours\n",
        },
    )
    problems = [p for f in scanned_files(tmp_path) for p in dangling_mentions(f, tmp_path)]
    assert problems == [
        "Makefile:1: docs/release.md (no such document in this repository)",
        "pkg/mod.py:1: design.md (no such document in this repository)",
        "pkg/mod.py:2: docs/routing.md#wiring (no heading with that anchor)",
        "pkg/mod.py:3: routing.md (no section 1 there)",
        "pkg/mod.py:3: routing.md (no section 2 there)",
    ]


def test_every_relative_link_in_the_docs_resolves() -> None:
    docs = markdown_docs(ROOT)
    assert len(docs) > 5
    assert [p for doc in docs for p in broken_links(doc, ROOT)] == []


def test_every_document_mentioned_in_code_config_and_docs_exists() -> None:
    files = scanned_files(ROOT)
    assert ROOT / "Makefile" in files and Path(__file__).resolve() in files
    # This file's own synthetic examples are the only dangling mentions allowed.
    assert [p for f in files if f != Path(__file__).resolve() for p in dangling_mentions(f, ROOT)] == []
