"""Writing journaled settles into the ledger: a drain's batch, and the journals of dead processes.

Lines are grouped by org and lease and written `DRAIN_BATCH` at a time, each group one
`Ledger.settle_leased` transaction; a line already in the ledger (the same key) writes nothing,
so a batch retried after a failure, or a journal replayed twice, changes nothing. A dead
process's journal (`billing.journal.orphans`) is removed only once all of its lines are in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from billing.journal import replay
from billing.ledger import Ledger
from billing.ledger_lease import LeasedSettle

log = logging.getLogger("patchbay.billing")

DRAIN_BATCH = 500
"""The most one transaction writes; as many lines waiting start a drain before its interval ends."""


async def write_settles(ledger: Ledger, settles: Sequence[LeasedSettle]) -> None:
    groups: dict[tuple[str, str], list[LeasedSettle]] = {}
    for s in settles:
        groups.setdefault((s.org_id, s.lease_id), []).append(s)
    for (org_id, lease_id), group in groups.items():
        for start in range(0, len(group), DRAIN_BATCH):
            await ledger.settle_leased(org_id, lease_id, group[start : start + DRAIN_BATCH])


async def replay_orphans(ledger: Ledger, directory: Path) -> int:
    """Write the journals no living process holds into the ledger, then remove them; returns how many."""

    async def write(lines: list[dict[str, Any]]) -> None:
        await write_settles(ledger, [LeasedSettle.from_line(line) for line in lines])

    replayed = await replay(directory, write)
    if replayed:
        log.info("settle journals of dead processes replayed", extra={"fields": {"count": replayed}})
    return replayed
