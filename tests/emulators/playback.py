"""Playing a scripted response body, with timing and faults, shared by every emulator.

`FaultyStream` sends its frames after a first-byte delay and with a delay between frames,
and can stall (hold the connection open), drop (abort mid-body) or truncate (end cleanly,
early) after n frames. It watches for the client going away meanwhile and reports it, so a
test can assert that a cancelled stream really closed its connection. Each emulator's
scenario type maps onto these knobs in a thin subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

STALL_LIMIT = 60.0
"""A stalled stream gives up after this long, so a test that never leaves cannot pin the server."""


class DroppedConnection(Exception):
    """Raised inside the app to make the server abort the connection mid-body."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def silence_dropped_connection_logs() -> None:
    """Scripted drops are expected; keep their tracebacks out of the test output."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class FaultyStream(Response):
    """Streams `frames` under the given timing and faults; fault positions count frames.

    `on_disconnect` is called (once) when the client leaves; `on_complete` when every frame
    and the end of the body have been sent.
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str],
        on_disconnect: Callable[[], None],
        on_complete: Callable[[], None] | None = None,
        first_byte_delay: float = 0.0,
        chunk_delay: float = 0.0,
        stall_after: int | None = None,
        drop_after: int | None = None,
        truncate_after: int | None = None,
    ) -> None:
        # Not Response.__init__: that would add `content-length: 0` to a streamed body.
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(dict(headers))
        self.frames = frames
        self.on_disconnect = on_disconnect
        self.on_complete = on_complete
        self.first_byte_delay = first_byte_delay
        self.chunk_delay = chunk_delay
        self.stall_after = stall_after
        self.drop_after = drop_after
        self.truncate_after = truncate_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.on_disconnect()
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._play(send, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _play(self, send: Send, gone: asyncio.Event) -> None:
        if await _pause(gone, self.first_byte_delay):
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for index, frame in enumerate(self.frames):
            if index == self.truncate_after:
                break
            if index == self.drop_after:
                raise DroppedConnection("scripted connection drop")
            if index == self.stall_after:
                await _pause(gone, STALL_LIMIT)
                return
            if index and await _pause(gone, self.chunk_delay):
                return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.on_complete is not None:
            self.on_complete()


async def _pause(gone: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` unless the client leaves first; True when it left."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gone.wait(), seconds)
    return gone.is_set()
