"""Realtime sessions at shutdown: kept until they end or the drain runs out, not cut at once.

On SIGTERM (a rolling update, a node drain, a SIGHUP reload retiring a worker) uvicorn stops
accepting connections and calls `shutdown()` on every open one. Its WebSocket protocol then
closes the socket at once with 1012 (service restart): every live call, browser or phone,
hung up at every deploy. Here an open session goes on as before for up to
`PATCHBAY_VOICE_DRAIN_SECONDS`, and the worker stops as soon as the last one ends; a session
still open at the end of the drain is closed with 1012 then, as uvicorn would have at once.
A socket still in its handshake, or already closing, is shut down at once, as before.

The app learns that its session is draining through the scope extension `DRAINING`, an
`asyncio.Event` set when the drain starts: a session whose client resumes in a new one (the
browser SDK) is then closed with 1012 at its first quiet moment (`server.realtime.connection`),
and a Twilio call is handed to a new stream at its own (`server.realtime.handover`), so a
rolling update need not wait for either.

uvicorn waits for open connections for its `timeout_graceful_shutdown`, which `server.serve`
sets to the drain plus `REQUEST_GRACE_SECONDS`, so HTTP requests in flight, and the sessions'
own handlers after a close, still get that long to finish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from websockets.http11 import Request

from foundation.metrics import VOICE_DRAIN_CLOSES
from server.websocket_direct import DirectMessageProtocol

log = logging.getLogger("patchbay.server")

DRAINING = "patchbay.draining"
"""The scope extension: an `asyncio.Event` set when this socket's session starts draining."""
SERVICE_RESTART = 1012
"""The close code of a socket whose worker is going away: uvicorn's when the drain runs out, and
a resuming session's at its quiet moment."""


def draining_of(scope: Any) -> asyncio.Event | None:
    """The event set when this socket's session starts draining (None outside `patchbay serve`)."""
    event = (scope.get("extensions") or {}).get(DRAINING)
    return event if isinstance(event, asyncio.Event) else None


REQUEST_GRACE_SECONDS = 10.0
"""What in-flight requests have after the drain (uvicorn's wait past it cancels their tasks)."""


class DrainingProtocol(DirectMessageProtocol):
    """`server.websocket_direct`'s protocol, whose open sessions outlast a shutdown by up to
    `drain_seconds`."""

    def __init__(self, *args: Any, drain_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain_seconds = drain_seconds
        self.draining = asyncio.Event()
        self._drain: asyncio.TimerHandle | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DRAINING] = self.draining

    def shutdown(self) -> None:
        if self._drain is not None:
            return  # draining already: the timer closes it
        if self.drain_seconds <= 0 or not self._open_session():
            super().shutdown()
            return
        self._drain = asyncio.get_running_loop().call_later(self.drain_seconds, self._drained)
        self.draining.set()
        log.info("realtime session draining", extra={"fields": self._fields()})

    def _open_session(self) -> bool:
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.transport.is_closing()
        )

    def _drained(self) -> None:
        if self._open_session():
            VOICE_DRAIN_CLOSES.labels("deadline").inc()
            log.warning("realtime session closed at the end of the drain", extra={"fields": self._fields()})
        super().shutdown()

    def _fields(self) -> dict[str, Any]:
        scope = getattr(self, "scope", None) or {}
        return {"path": scope.get("path"), "drain_seconds": self.drain_seconds}

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain is not None:
            self._drain.cancel()
        super().connection_lost(exc)


def websocket_protocol(drain_seconds: float) -> Any:
    """uvicorn's `ws` option: a partial, so it pickles for spawned workers."""
    return functools.partial(DrainingProtocol, drain_seconds=drain_seconds)
