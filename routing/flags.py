"""Feature flags: the registry of known flags (data) and their evaluation for one org (pure).

A flag is on or off per org. Its stored state (`FlagState`, kept in `feature_flags` by
`routing.flag_store`) decides, in this order:

1. `killed`: the global kill switch; the flag is off for every org (the old path).
2. `canary`: orgs listed here have it on.
3. `percent`: when set, an org has it on when its stable bucket
   (`sha256("<flag>:<org_id>") mod 10000`) is below `percent * 100`; 0 turns it off for every
   org outside the canary list, 100 on for every org.
4. Otherwise the flag's documented default (`FlagDef.default`).

A flag with no stored state is its default. Evaluation runs when the registry loads an org's
snapshot (routing/registry.py), never per request. Adding a flag is one entry in `FLAGS` (and
its line in docs/flags.md); the code it gates asks `OrgRouting.flag(name)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

BUCKETS = 10_000
"""Percentages are evaluated in hundredths of a percent: bucket < percent * 100."""


@dataclass(frozen=True, slots=True)
class FlagDef:
    name: str
    default: bool
    """The value for every org while the flag has no stored rollout."""
    gates: str
    """What turning it off does, in plain words (shown by `patchbay flags list` and the UI)."""


FLAGS: Mapping[str, FlagDef] = MappingProxyType(
    {
        f.name: f
        for f in (
            FlagDef(
                "byok",
                True,
                "off: the org's own-key (BYOK) connections are skipped (`skipped:flag:byok`)",
            ),
            FlagDef(
                "private_endpoints",
                True,
                "off: the org's private endpoints are skipped (`skipped:flag:private`)",
            ),
            FlagDef("voice", True, "off: realtime voice sessions are refused (`feature_disabled`)"),
            FlagDef(
                "billing_enforcement",
                True,
                "off: platform-paid requests are not refused for credits; usage is still metered and charged",
            ),
        )
    }
)

FLAG_OF_SOURCE: Mapping[str, str] = MappingProxyType({"byok": "byok", "private": "private_endpoints"})
"""The flag that gates connections of a billing source; the skip reason names the source."""


def source_allowed(source: str, flags: frozenset[str]) -> bool:
    """Whether connections of billing source `source` may be used with `flags` on."""
    gate = FLAG_OF_SOURCE.get(source)
    return gate is None or gate in flags


class UnknownFlagError(LookupError):
    """A flag name that is not in `FLAGS`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown flag {name!r}: known flags are {', '.join(sorted(FLAGS))}")


def flag_def(name: str) -> FlagDef:
    found = FLAGS.get(name)
    if found is None:
        raise UnknownFlagError(name)
    return found


@dataclass(frozen=True, slots=True)
class FlagState:
    """A flag's stored rollout (routing/flag_store.py)."""

    name: str
    percent: float | None = None
    """0-100, or None: no percentage rollout (the default applies outside the canary list)."""
    canary: frozenset[str] = field(default_factory=frozenset)
    killed: bool = False


def bucket(name: str, org_id: str) -> int:
    """The org's stable bucket for `name`, 0..9999: the same on every replica and every restart."""
    digest = hashlib.sha256(f"{name}:{org_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def is_on(definition: FlagDef, state: FlagState | None, org_id: str) -> bool:
    if state is None:
        return definition.default
    if state.killed:
        return False
    if org_id in state.canary:
        return True
    if state.percent is not None:
        return bucket(definition.name, org_id) < round(state.percent * 100)
    return definition.default


def enabled_flags(states: Iterable[FlagState], org_id: str) -> frozenset[str]:
    """The names of every known flag that is on for `org_id`; unknown stored names are ignored."""
    by_name = {s.name: s for s in states}
    return frozenset(name for name, d in FLAGS.items() if is_on(d, by_name.get(name), org_id))


ALL_ON: frozenset[str] = frozenset(name for name, d in FLAGS.items() if d.default)
"""Every flag at its default: what a snapshot built without stored flags carries."""
