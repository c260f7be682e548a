"""The one queue between a voice session and its transport, and the barge-in choke point.

Every event the session emits goes through `put`; the transport's writer drains `get` in
order. `cancel(response_id)` removes that response's queued `CancellableOutput` events and
refuses any later ones, in one synchronous step. Because the queue is FIFO and the event
announcing the cancellation (speech_started, response.done) is put after `cancel`, no
cancelled delta can reach the wire after it, whatever tasks are still unwinding.

`put_later()` keeps a place in the queue for an event not known yet (a cancelled response's
`response.done`, whose cost is known only once its segments have settled): `get` waits at that
place until the event is given, so nothing queued after it overtakes it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from foundation.metrics import LATE_FRAMES
from voice.events import CancellableOutput, SessionEvent

_REMEMBERED = 64
"""Cancelled response ids kept; a session never has more than a couple of live responses."""


class Outbox:
    def __init__(self) -> None:
        self._queue: deque[SessionEvent | asyncio.Future[SessionEvent]] = deque()
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
            LATE_FRAMES.inc()
            return False
        self._queue.append(event)
        self._ready.set()
        return True

    def put_later(self) -> asyncio.Future[SessionEvent]:
        """A place in the queue for an event given later (`set_result`); `get` waits there."""
        place: asyncio.Future[SessionEvent] = asyncio.get_running_loop().create_future()
        place.add_done_callback(lambda _: self._ready.set())
        self._queue.append(place)
        self._ready.set()
        return place

    def cancel(self, response_id: str) -> None:
        if response_id not in self._cancelled:
            self._cancelled.append(response_id)
        kept = deque(
            e for e in self._queue if not (isinstance(e, CancellableOutput) and e.response_id == response_id)
        )
        purged = len(self._queue) - len(kept)
        self.dropped += purged
        if purged:
            LATE_FRAMES.inc(purged)
        self._queue = kept

    def is_cancelled(self, response_id: str) -> bool:
        return response_id in self._cancelled

    def get_nowait(self) -> SessionEvent | None:
        """The next event; None when there is none, or the next place's event is not given yet."""
        head = self._queue[0] if self._queue else None
        if head is None or (isinstance(head, asyncio.Future) and not head.done()):
            self._ready.clear()
            return None
        self._queue.popleft()
        return head.result() if isinstance(head, asyncio.Future) else head

    async def get(self) -> SessionEvent:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            await self._ready.wait()
