"""Per-process credit leases: a chargeable segment's hold and settle with no database round trip.

A lease is one ledger hold (details `{"lease": true}`) of `LEASE_HOLDS` times the segment's hold,
at most half of what is available. A segment's hold is a draw on it in memory (`take`); the book
tops the lease up in the background under a quarter free, and synchronously when a draw does
not fit (`reserve`, one top-up at a time per org). Near zero (half of available under
`MIN_LEASE_HOLDS` holds) `reserve` answers None and the caller takes a per-request hold, for the
next `LOW_RETRY` segments. A lease takes draws for half the hold TTL, then retires: released
(its unused part) once its last draw is settled and written. A settle appends one line to the
process's journal (`billing.journal`, before it returns, so before the response completes); a
background task drains it every `DRAIN_INTERVAL` (`fdatasync`, then `Ledger.settle_leased`,
keyed) and, at start and every `ORPHAN_EVERY` drains, replays dead processes' journals.
`flush` drains and releases every lease (clean shutdown; tests). See docs/billing.md#speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from billing.journal import Journal
from billing.lease_drain import DRAIN_BATCH, replay_orphans, write_settles
from billing.ledger import Ledger
from billing.ledger_lease import LeasedSettle
from billing.ledger_rules import charge_details
from billing.ledger_types import HoldClosedError
from billing.preflight import InsufficientCreditsError
from foundation.background import BackgroundTask
from foundation.db import utcnow
from foundation.metrics import LEASES_OPEN

log = logging.getLogger("patchbay.billing")

LEASE_HOLDS = 256  # a lease covers this many of the hold that asked for it
MIN_LEASE_HOLDS = 8  # fewer of them in half of what is available: no lease, per-request holds
LOW_RETRY = 32
"""After a lease was refused, this many per-request holds before the book tries again."""
RENEW_AT = 4
"""Top up in the background when the free part is under 1/RENEW_AT of the lease."""
DRAIN_INTERVAL = 0.2
"""Seconds between drains: the most a machine crash (not a process kill) can lose."""
ORPHAN_EVERY = 50
ROTATE_BYTES = 4 << 20  # a journal never all drained (constant load) is replaced at this size
MINTED_REQUEST_ID = re.compile(r"req_[0-9a-f]{16}")
"""The request ids `server.middleware` mints; any other was sent by the client and, for an org
with rows imported from the predecessor, may be one it charged: per-request hold, which checks."""


@dataclass(eq=False)
class Lease:
    id: str
    org_id: str
    amount: int
    free: int
    use_until: datetime
    drawing: int = 0  # draws taken and not yet settled or released


@dataclass(eq=False)
class Draw:
    """One segment's hold, served from `lease`."""

    lease: Lease
    amount: int
    closed: bool = False


class LeaseBook:
    """The leases of one process; off (`reserve` answers None) until `start`."""

    def __init__(
        self,
        ledger: Ledger,
        journal_dir: Path,
        *,
        clock: Callable[[], datetime] = utcnow,
        drain_interval: float = DRAIN_INTERVAL,
    ) -> None:
        self._ledger = ledger
        self._dir = journal_dir
        self._clock = clock
        self._interval = drain_interval
        self._journal: Journal | None = None
        self._pending: list[LeasedSettle] = []
        self._current: dict[str, Lease] = {}
        self._retired: list[Lease] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._low: dict[str, int] = {}
        self._imported: dict[str, bool] = {}
        self._renewing: dict[str, asyncio.Task[None]] = {}
        self._draining = asyncio.Lock()
        self._wake = asyncio.Event()
        self._background = BackgroundTask("patchbay-lease-drain", self._loop)
        self._prefix = f"lease:{uuid.uuid4().hex[:16]}"
        self._count = 0

    async def start(self) -> None:
        """Replay dead processes' journals, open this one's, and start draining."""
        await self.replay_orphans()
        self._journal = Journal(self._dir)
        self._background.start()

    async def aclose(self) -> None:
        """Stop; write what is journaled and release the leases (a failure leaves the journal
        for the next start to replay)."""
        await self._background.stop()
        for task in list(self._renewing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        journal, self._journal = self._journal, None
        if journal is None:
            return
        try:
            await self.flush()
        finally:
            journal.close(remove=not self._pending)

    @property
    def journaling(self) -> bool:
        return self._journal is not None

    def take(self, org_id: str, amount: int, request_id: str | None = None) -> Draw | None:
        """A draw of `amount` on the org's lease, from memory; None when it does not fit."""
        lease = self._current.get(org_id)
        if self._journal is None or lease is None or lease.free < amount or self._clock() >= lease.use_until:
            return None
        if self._imported.get(org_id) and not MINTED_REQUEST_ID.fullmatch(request_id or ""):
            return None
        lease.free -= amount
        lease.drawing += 1
        if lease.free * RENEW_AT < lease.amount and org_id not in self._renewing:
            self._renewing[org_id] = asyncio.create_task(self._renew(org_id, amount))
        return Draw(lease, amount)

    async def reserve(self, org_id: str, amount: int, request_id: str | None = None) -> Draw | None:
        """A draw, topping the lease up first if need be; None: take a per-request hold instead."""
        draw = self.take(org_id, amount, request_id)
        if draw is not None or self._journal is None:
            return draw
        async with self._locks.setdefault(org_id, asyncio.Lock()):
            if org_id not in self._imported:
                self._imported[org_id] = await self._ledger.imported_any(org_id)
            if self._imported[org_id] and not MINTED_REQUEST_ID.fullmatch(request_id or ""):
                return None  # the per-request hold checks it against the predecessor's charges
            draw = self.take(org_id, amount, request_id)
            if draw is None and self._may_lease(org_id):
                await self._open(org_id, amount)
                draw = self.take(org_id, amount, request_id)
            return draw

    async def settle(
        self,
        draw: Draw,
        requested: int,
        key: str,
        details: Mapping[str, Any],
        *,
        api_key_id: str | None,
        request_id: str | None,
    ) -> int:
        """Charge `requested` for the draw (more than drawn: at most what the lease has free),
        journaled before this returns; returns what was charged."""
        lease = draw.lease
        extra = min(max(requested - draw.amount, 0), lease.free)
        charged = min(requested, draw.amount) + extra
        journal = self._journal
        if charged > 0 and journal is None:  # closing down with the draw still open: pay as before
            draw.closed, lease.drawing = True, lease.drawing - 1
            lease.free += draw.amount
            entry = await self._ledger.charge(
                lease.org_id, requested, key, details=details, api_key_id=api_key_id
            )
            return entry.amount
        try:
            if charged > 0 and journal is not None:
                info = charge_details(
                    {**details, "lease": lease.id}, requested, charged, draw.amount, api_key_id
                )
                line = LeasedSettle(
                    lease.org_id, lease.id, key, charged, info, self._clock(), api_key_id, request_id
                )
                journal.append(line.line())
                self._pending.append(line)
                lease.free -= charged
                if len(self._pending) >= DRAIN_BATCH:
                    self._wake.set()
        finally:
            self.release(draw)
        return charged

    def release(self, draw: Draw) -> None:
        """Give the draw back to its lease (once)."""
        if not draw.closed:
            draw.closed = True
            draw.lease.free += draw.amount
            draw.lease.drawing -= 1

    async def flush(self) -> None:
        """Write every journaled settle, and release every lease nobody draws on."""
        await self.drain()
        for lease in self._current.values():
            self._retired.append(lease)
        self._current.clear()
        await self.drain()

    async def drain(self) -> None:
        """fdatasync the journal, write its lines into the ledger, close idle retired leases."""
        async with self._draining:
            journal, count = self._journal, len(self._pending)
            if count and journal is not None and journal.size > ROTATE_BYTES:
                self._journal = Journal(self._dir)  # new lines there; this one goes once written
            if count:
                if journal is not None:
                    await asyncio.to_thread(journal.sync)
                written = False
                try:
                    await write_settles(self._ledger, self._pending[:count])
                    written = True
                finally:  # a rotated journal not written is left to a replay (keyed: charged once)
                    if journal is not None and journal is not self._journal:
                        journal.close(remove=written)
                del self._pending[:count]
                if journal is not None and journal is self._journal and not self._pending:
                    journal.truncate()
            now = self._clock()
            for org_id, lease in list(self._current.items()):
                if now >= lease.use_until:  # no new draws on it: give back what is unused
                    del self._current[org_id]
                    self._retired.append(lease)
            for lease in list(self._retired):
                if lease.drawing == 0 and not any(s.lease_id == lease.id for s in self._pending):
                    self._retired.remove(lease)
                    LEASES_OPEN.dec()
                    with contextlib.suppress(HoldClosedError):  # the sweeper released it at its TTL
                        await self._ledger.release(lease.id, f"{lease.id}:release", org_id=lease.org_id)

    async def replay_orphans(self) -> int:
        """Write the journals of dead processes into the ledger and remove them; returns how many."""
        return await replay_orphans(self._ledger, self._dir)

    def _may_lease(self, org_id: str) -> bool:
        skip = self._low.get(org_id, 0)
        if skip:
            self._low[org_id] = skip - 1
        return not skip

    async def _open(self, org_id: str, amount: int) -> None:
        """A new lease for the org (the org's lock held); the old one retires."""
        self._count += 1
        key = f"{self._prefix}:{self._count}"
        details = {"lease": True}
        try:
            try:
                entry = await self._ledger.hold(org_id, amount * LEASE_HOLDS, key, details=details)
            except InsufficientCreditsError as exc:
                half = (exc.available or 0) // 2
                if half < amount * MIN_LEASE_HOLDS:
                    raise
                entry = await self._ledger.hold(org_id, half, f"{key}:half", details=details)
        except InsufficientCreditsError:
            self._low[org_id] = LOW_RETRY
            return
        old = self._current.get(org_id)
        until = self._clock() + self._ledger.hold_ttl / 2
        self._current[org_id] = Lease(entry.id, org_id, entry.amount, entry.amount, until)
        LEASES_OPEN.inc()
        if old is not None:
            self._retired.append(old)

    async def _renew(self, org_id: str, amount: int) -> None:
        try:
            async with self._locks.setdefault(org_id, asyncio.Lock()):
                lease = self._current.get(org_id)
                if lease is not None and lease.free * RENEW_AT < lease.amount and self._may_lease(org_id):
                    await self._open(org_id, amount)
        except Exception as exc:
            log.warning("credit lease renewal failed", extra={"fields": {"error": type(exc).__name__}})
        finally:
            self._renewing.pop(org_id, None)

    async def _loop(self) -> None:
        rounds = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            rounds += 1
            try:
                async with self._background.working():
                    await self.drain()
                    if rounds % ORPHAN_EVERY == 0:
                        await self.replay_orphans()
            except Exception as exc:
                log.warning("settle journal drain failed", extra={"fields": {"error": type(exc).__name__}})
