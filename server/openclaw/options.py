"""What one import run is told: the parsed files, the allowlist, env resolution and the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.contract import ProviderId

DEFAULT_ALLOW: frozenset[str] = frozenset(p.value for p in ProviderId if p is not ProviderId.INTERNAL)
"""The providers Patchbay supports (`providers.contract`); custom endpoints come in as `openai_compatible`."""


@dataclass(frozen=True, slots=True)
class Options:
    allow: frozenset[str] = DEFAULT_ALLOW
    """Provider ids to import: Patchbay ids, or OpenClaw ids of custom providers."""
    resolve_env: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)
    """Read only with `resolve_env`; the CLI passes the process environment."""
    now_ms: int = 0
    """The clock cooldown windows and token expiry are compared with (ms since the epoch)."""

    def allows(self, openclaw_id: str, provider: ProviderId) -> bool:
        return openclaw_id in self.allow or provider.value in self.allow


@dataclass(frozen=True, slots=True)
class Inputs:
    """The parsed files: the store (single file, or secrets of the split era), its state, the config."""

    profiles: Mapping[str, Any]
    state: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
