"""A phone call's handover kept current while the call lasts, so that a call whose worker dies
outright (kill -9, out of memory, a lost machine) goes on after Twilio's redirect from its last
finished reply, as a drained call does from its quiet moment (docs/voice.md, "A worker that dies").

A media stream whose TwiML names a handover has its row written when its session opens, and
again after each reply and each barge-in. The writes are a worker's, not a call's: every
`FLUSH_SECONDS` one transaction replaces the rows of all the calls whose conversation changed,
each with the conversation as it is then. So no audio frame waits on the database, and 300
calls cost a few transactions a second instead of one per reply (a transaction each cost about
a fifth of a core at 300 calls; docs/performance.md, "Phone calls, and their checkpoints"). A
worker that dies loses at most the changes of its last `FLUSH_SECONDS`. A row lives
`max_session_seconds` + `HANDOVER_SECONDS` from its last write: longer than its stream can.

How the row ends: a call that ends in order (Twilio's `stop`, the session's time limit, the
drain's deadline) deletes it; a drain's quiet moment or a dropped socket overwrites it with the
final handover, which lives `HANDOVER_SECONDS`; a worker that dies leaves it for the redirect;
one never used is deleted by the hourly sweep once expired (`server.activity.retention`). A
stream withdraws its call before that last write, and waits for a batch being written, so no
checkpoint lands after it. `PATCHBAY_TWILIO_CALL_CHECKPOINTS=false` builds no writer: a call on
a worker that dies then ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from foundation.background import BackgroundTask
from foundation.db import utcnow
from foundation.metrics import TWILIO_CHECKPOINTS
from server.db import Database
from server.realtime import handover
from server.realtime.handover import HANDOVER_SECONDS, Handover

log = logging.getLogger("patchbay.twilio")

FLUSH_SECONDS = 0.5
"""How often a worker writes the checkpoints of the calls whose conversation changed."""


class CallCheckpoint:
    """One media stream's checkpoint: `changed` after each reply and barge-in, `stop` before the
    stream's last word on its row (`discard`, or the final handover)."""

    def __init__(
        self, writer: CallCheckpoints, draft: Handover, conversation: Callable[[], list[dict[str, Any]]]
    ) -> None:
        self._writer = writer
        self._draft = draft
        """The call's handover without its conversation, which `conversation` gives at each write."""
        self._conversation = conversation
        self.written = 0
        """Times its row was written: with none, the redirect after a dead worker finds nothing."""
        self.stopped = False

    @property
    def id(self) -> str:
        return self._draft.id

    def changed(self) -> None:
        """The conversation changed (the session opened, a reply done, a reply cut short)."""
        if not self.stopped:
            self._writer.due(self)

    def latest(self) -> Handover:
        return replace(self._draft, items=self._conversation())

    async def stop(self) -> None:
        """No more writes of this call; one under way ends first, so nothing lands after what
        the stream writes next."""
        self.stopped = True
        await self._writer.withdraw(self)

    async def discard(self) -> None:
        """The call ended in order: its row goes (a failure only leaves it to expire)."""
        try:
            await handover.discard(self._writer.db, self.id)
        except Exception as exc:
            log.warning(
                "twilio call checkpoint not deleted: it expires instead",
                extra={"fields": {"call": self._draft.call_sid, "error_type": type(exc).__name__}},
            )


class CallCheckpoints:
    """A worker's writer of its calls' checkpoints, built by `Services` when they are on."""

    def __init__(self, db: Database, max_session_seconds: float, *, interval: float = FLUSH_SECONDS) -> None:
        self.db = db
        self._lifetime = timedelta(seconds=max_session_seconds + HANDOVER_SECONDS)
        self._interval = interval
        self._due: dict[str, CallCheckpoint] = {}
        self._background = BackgroundTask("call checkpoints", self._run)
        self._failing = False
        self._closed = False

    def open(self, draft: Handover, conversation: Callable[[], list[dict[str, Any]]]) -> CallCheckpoint:
        """A new stream's checkpoint, due at once (it has the principal the redirect needs)."""
        checkpoint = CallCheckpoint(self, draft, conversation)
        checkpoint.changed()
        return checkpoint

    def due(self, checkpoint: CallCheckpoint) -> None:
        if self._closed:
            return  # the worker is stopping: its calls were handed over or ended
        self._due[checkpoint.id] = checkpoint
        self._background.start()

    async def withdraw(self, checkpoint: CallCheckpoint) -> None:
        self._due.pop(checkpoint.id, None)
        async with self._background.working():
            pass  # a batch with this call in it has been written, or has failed

    async def flush(self) -> int:
        """Write the checkpoints due now, in one transaction; how many."""
        async with self._background.working():
            batch, self._due = list(self._due.values()), {}
            if not batch:
                return 0
            try:
                await handover.save_checkpoints(
                    self.db, [c.latest() for c in batch], utcnow() + self._lifetime
                )
            except Exception as exc:
                TWILIO_CHECKPOINTS.labels("failed").inc(len(batch))
                for checkpoint in batch:  # tried again at the next flush, unless its stream ended
                    if not checkpoint.stopped:
                        self._due.setdefault(checkpoint.id, checkpoint)
                if not self._failing:  # once an outage: the database says so everywhere else
                    log.warning(
                        "twilio call checkpoints not written: calls on a worker that dies now end",
                        extra={"fields": {"calls": len(batch), "error_type": type(exc).__name__}},
                    )
                self._failing = True
                return 0
            self._failing = False
            TWILIO_CHECKPOINTS.labels("written").inc(len(batch))
            for checkpoint in batch:
                checkpoint.written += 1
            return len(batch)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._due:
                await self.flush()

    async def aclose(self) -> None:
        self._closed = True
        await self._background.stop()
