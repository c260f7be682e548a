"""The shared OpenClaw sample files, and a clock set inside their cooldown windows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "data"
"""Copies of the shared samples (../shared/fixtures/openclaw/ of the project)."""
T0_MS = 1_767_225_630_000
"""2026-01-01T00:00:30Z: after the fixtures' last failures, inside openai:default's cooldown
(until +30 s) and anthropic:default's billing disable (until +570 s); openrouter's has ended."""
CANARIES = tuple(f"CANARY-000{i}" for i in range(1, 9))
"""Every secret in the sample files contains one of these."""


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc
