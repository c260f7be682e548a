"""The one queue between a voice session and its transport, and the barge-in choke point.

Every event the session emits goes through `put`; the transport's writer drains `get` in
order. `cancel(response_id)` removes that response's queued `CancellableOutput` events and
refuses any later ones, in one synchronous step. Because the queue is FIFO and the event
announcing the cancellation (speech_started, response.done) is put after `cancel`, no
cancelled delta can reach the wire after it, whatever tasks are still unwinding.
"""

from __future__ import annotations

import asyncio
from collections import deque

from voice.events import CancellableOutput, SessionEvent

_REMEMBERED = 64
"""Cancelled response ids kept; a session never has more than a couple of live responses."""


class Outbox:
    def __init__(self) -> None:
        self._queue: deque[SessionEvent] = deque()
        self._ready = asyncio.Event()
        self._cancelled: deque[str] = deque(maxlen=_REMEMBERED)
        self.dropped = 0
        """Cancellable events refused or purged, for metrics and tests."""

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, event: SessionEvent) -> bool:
        """Queue `event`; False when it belongs to a cancelled response and was dropped."""
        if (
            event.cancellable
            and isinstance(event, CancellableOutput)
            and event.response_id in self._cancelled
        ):
            self.dropped += 1
            return False
        self._queue.append(event)
        self._ready.set()
        return True

    def cancel(self, response_id: str) -> None:
        if response_id not in self._cancelled:
            self._cancelled.append(response_id)
        kept = deque(
            e for e in self._queue if not (isinstance(e, CancellableOutput) and e.response_id == response_id)
        )
        self.dropped += len(self._queue) - len(kept)
        self._queue = kept

    def is_cancelled(self, response_id: str) -> bool:
        return response_id in self._cancelled

    def get_nowait(self) -> SessionEvent | None:
        if not self._queue:
            self._ready.clear()
            return None
        return self._queue.popleft()

    async def get(self) -> SessionEvent:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            await self._ready.wait()
