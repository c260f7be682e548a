"""The provider fault matrix as docs/reliability.md shows it: rows, rendering and reading back.

The matrix test (tests/server/v1/test_fault_matrix.py) observes one `Row` per cell; the doc
holds one table per wire protocol between `<!-- fault-matrix PROTOCOL -->` and
`<!-- /fault-matrix -->`. The test compares its rows with the doc's, so the doc cannot drift;
with `PATCHBAY_RENDER_FAULT_MATRIX=1` it writes its rows into the doc instead (run without
xdist then: each test rewrites its own rows of a shared file).
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from pathlib import Path

from providers.contract import ErrorClass

DOC = Path(__file__).resolve().parents[3] / "docs" / "reliability.md"
HEADER = (
    "| Error class | Mode | Phase | Upstream does | Client gets | Fallback | Tries | Primary profile after |",
    "|---|---|---|---|---|---|---|---|",
)
_ORDER = {c.value: i for i, c in enumerate(ErrorClass)}
_MODES = {"non-stream": 0, "stream": 1}
_PHASES = {"before output": 0, "after output": 1}


@dataclass(frozen=True)
class Row:
    error_class: str
    mode: str
    phase: str
    fault: str
    client: str
    fallback: str
    tries: str
    profile: str

    def line(self) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in astuple(self)) + " |"

    def key(self) -> tuple[int, int, int]:
        return _ORDER[self.error_class], _MODES[self.mode], _PHASES[self.phase]


def _block(protocol: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- fault-matrix {re.escape(protocol)} -->\n)(.*?)(<!-- /fault-matrix -->)", re.DOTALL
    )


def _split(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def documented(protocol: str, text: str | None = None) -> list[Row]:
    """The rows the doc holds for `protocol` (all modes)."""
    text = DOC.read_text() if text is None else text
    match = _block(protocol).search(text)
    if match is None:
        raise AssertionError(f"{DOC} has no fault-matrix block for {protocol}")
    lines = [ln for ln in match.group(2).splitlines() if ln.startswith("|")][len(HEADER) :]
    return [Row(*_split(ln)) for ln in lines]


def render(rows: list[Row]) -> str:
    return "\n".join([*HEADER, *(r.line() for r in sorted(rows, key=Row.key))]) + "\n"


def rewrite(protocol: str, mode: str, rows: list[Row]) -> None:
    """Replace the doc's rows of `protocol` in `mode` with `rows`, keeping the other mode's."""
    text = DOC.read_text()
    try:
        kept = [r for r in documented(protocol, text) if r.mode != mode]
    except AssertionError:
        raise AssertionError(f"add an empty fault-matrix block for {protocol} to {DOC} first") from None
    table = render(kept + rows)
    DOC.write_text(_block(protocol).sub(lambda m: m.group(1) + table + m.group(3), text))
