"""The background task that releases holds left open by a crash, once their TTL has passed.

Every server process runs one (`server.services`); they may overlap freely, because
`Ledger.release_expired` releases each hold exactly once whoever gets there first. A failed
sweep (database unreachable) is logged by type and tried again at the next interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from billing.ledger import Ledger
from billing.ledger_types import Entry
from foundation.background import PeriodicTask
from foundation.db import utcnow

log = logging.getLogger("patchbay.billing")


class HoldSweeper:
    def __init__(
        self,
        ledger: Ledger,
        *,
        interval: float,
        batch: int = 500,
        clock: Callable[[], datetime] = utcnow,
        on_sweep: Callable[[list[Entry]], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._batch = batch
        self._clock = clock
        self._on_sweep = on_sweep
        self._background = PeriodicTask(
            "patchbay-hold-sweeper", self._sweep_and_tell, interval, log=log, what="hold sweep"
        )

    async def sweep(self) -> list[Entry]:
        """Release every hold expired by now (in batches); returns what this sweep released."""
        released: list[Entry] = []
        while True:
            batch = await self._ledger.release_expired(self._clock(), limit=self._batch)
            released.extend(batch)
            if not batch:
                break
        if released:
            log.info("expired holds released", extra={"fields": {"count": len(released)}})
        return released

    async def _sweep_and_tell(self) -> None:
        released = await self.sweep()
        if self._on_sweep is not None:
            self._on_sweep(released)

    @property
    def running(self) -> bool:
        return self._background.running

    def start(self) -> None:
        self._background.start()

    async def aclose(self) -> None:
        await self._background.stop()
