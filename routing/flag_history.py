"""An org's configuration timeline: its own versions and the flag changes that reached it.

Feature flags are platform-wide (routing/flags.py): a flag change is a version of the platform
scope (`config_history`, section `flags`, written by routing/flag_store.py), not of each org.
`org_timeline` merges, newest first, the org's own versions with the platform versions that
changed which flags are on *for this org* (a canary list it is on, a percentage that moved
its bucket across, a kill switch), each line saying what changed for the org and why. A
platform version that changed nothing for the org is left out.

Rolling back an org never touches flags (they are every org's); `patchbay config rollback
--platform --to N` rolls the flags back (docs/flags.md#history-and-rollback).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from routing import config_history
from routing import flag_store as _registers_the_flags_section  # noqa: F401
from routing.flags import ALL_ON, FLAGS, FlagState, enabled_flags
from routing.platform import PLATFORM_SCOPE

__all__ = ["TimelineEntry", "flag_changes_for_org", "org_timeline"]


@dataclass(frozen=True)
class TimelineEntry:
    scope: str
    """`org`: a version of the org; `platform`: a version of the platform's flags."""
    version: int
    kind: str
    actor: str
    created_at: datetime
    changes: list[str]
    snapshot: dict[str, Any]


def _states(snapshot: dict[str, Any]) -> list[FlagState]:
    return [
        FlagState(
            name=name,
            percent=item.get("percent"),
            canary=frozenset(item.get("canary") or ()),
            killed=bool(item.get("killed")),
        )
        for name, item in (snapshot.get("flags") or {}).items()
    ]


def _why(name: str, snapshot: dict[str, Any], org_id: str) -> str:
    item = (snapshot.get("flags") or {}).get(name)
    if item is None:
        return "its default"
    if item.get("killed"):
        return "kill switch on"
    if org_id in (item.get("canary") or ()):
        return "canary org"
    if item.get("percent") is not None:
        return f"rollout at {item['percent']:g}%"
    return "its default"


def flag_changes_for_org(before: dict[str, Any] | None, after: dict[str, Any], org_id: str) -> list[str]:
    """What a platform version changed for one org (pure): one line per flag turned on or off."""
    old = enabled_flags(_states(before), org_id) if before is not None else ALL_ON
    new = enabled_flags(_states(after), org_id)
    lines = []
    for name in sorted(FLAGS):
        if (name in old) != (name in new):
            state = "on" if name in new else "off"
            lines.append(f"flag {name}: {state} for this org ({_why(name, after, org_id)})")
    return lines


async def org_timeline(session: AsyncSession, org_id: str, *, limit: int = 50) -> list[TimelineEntry]:
    """The org's versions and the platform flag versions that changed it, newest first."""
    own = [
        TimelineEntry("org", r.version, r.kind, r.actor, r.created_at, list(r.changes), dict(r.snapshot))
        for r in await config_history.history(session, org_id, limit=limit)
    ]
    platform = list(reversed(await config_history.history(session, PLATFORM_SCOPE, limit=limit + 1)))
    flags: list[TimelineEntry] = []
    for index, row in enumerate(platform):
        if index == 0 and len(platform) > limit:
            continue  # only the baseline for the next one
        before = platform[index - 1].snapshot if index > 0 else None
        lines = flag_changes_for_org(before, row.snapshot, org_id)
        if lines:
            flags.append(
                TimelineEntry("platform", row.version, row.kind, row.actor, row.created_at, lines, {})
            )
    merged = sorted(own + flags, key=lambda e: e.created_at, reverse=True)
    return merged[:limit]
