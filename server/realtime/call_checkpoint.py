"""A phone call's handover kept current while the call lasts, so that a call whose worker dies
outright (kill -9, out of memory, a lost machine) goes on after Twilio's redirect from its last
finished reply, as a drained call does from its quiet moment (docs/voice.md, "A worker that dies").

A media stream whose TwiML names a handover writes the handover's row when its session opens,
and again after each reply and each barge-in. Writes run beside the call, one at a time, each
with the conversation as it is when the write starts, so no audio frame waits on the database
and a burst of replies costs one write more, not one per reply. The row lives
`max_session_seconds` + `HANDOVER_SECONDS` from its last write: longer than its stream can.

How the row ends: a call that ends in order (Twilio's `stop`, the session's time limit, the
drain's deadline) deletes it; a drain's quiet moment or a dropped socket overwrites it with the
final handover, which lives `HANDOVER_SECONDS`; a worker that dies leaves it for the redirect;
one never used is deleted by the hourly sweep once expired (`server.activity.retention`).
`PATCHBAY_TWILIO_CALL_CHECKPOINTS=false` writes none: a call on a worker that dies then ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from foundation.db import utcnow
from server.db import Database
from server.realtime import handover
from server.realtime.handover import HANDOVER_SECONDS, Handover

log = logging.getLogger("patchbay.twilio")


class CallCheckpoint:
    """The checkpoint writer of one media stream: `start`, `turn_done` after each reply,
    `stop` before the stream's last word on its row (`discard` or the final handover)."""

    def __init__(
        self,
        db: Database,
        draft: Handover,
        conversation: Callable[[], list[dict[str, Any]]],
        max_session_seconds: float,
    ) -> None:
        self._db = db
        self._draft = draft
        """The call's handover without its conversation, which `conversation` gives at each write."""
        self._conversation = conversation
        self._lifetime = max_session_seconds + HANDOVER_SECONDS
        self._wanted = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        """Checkpoints written: with none, the redirect after a dead worker finds nothing."""
        self.failed = 0

    def start(self) -> None:
        self._wanted.set()
        self._task = asyncio.ensure_future(self._run())

    def turn_done(self) -> None:
        """The conversation changed (a reply done, a reply cut short): write it when the writer
        is free."""
        self._wanted.set()

    async def stop(self) -> None:
        """No more writes; one under way finishes first, so nothing lands after what the stream
        writes next."""
        self._stopping = True
        self._wanted.set()
        if self._task is not None:
            await self._task

    async def discard(self) -> None:
        """The call ended in order: its row goes (a failure only leaves it to expire)."""
        try:
            await handover.discard(self._db, self._draft.id)
        except Exception as exc:
            log.warning(
                "twilio call checkpoint not deleted: it expires instead",
                extra={"fields": {"call": self._draft.call_sid, "error_type": type(exc).__name__}},
            )

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            await self._write()

    async def _write(self) -> None:
        latest = replace(self._draft, items=self._conversation())
        try:
            await handover.save(self._db, latest, utcnow(), lifetime=self._lifetime)
        except Exception as exc:
            self.failed += 1
            if self.failed == 1:  # once a call: a database that is down says so everywhere else
                log.warning(
                    "twilio call checkpoint not written: a worker that dies ends the call",
                    extra={"fields": {"call": self._draft.call_sid, "error_type": type(exc).__name__}},
                )
            return
        self.written += 1
