"""A turn heard while the caller speaks: its audio streamed to a streaming STT engine.

When the session's STT engine can stream (`providers.speech.streaming_stt.StreamingSTT`), the
session opens a `StreamedTurn` at the start of speech and feeds it every frame of the turn's
audio from then on (and, first, the audio since the turn's start, pre-speech padding
included). Opening takes a moment (a connection, the provider's session start), so frames fed
meanwhile wait here and go out, in order, as soon as it is open; `feed` never blocks the
session's per-frame path.

At the endpoint, `commit` answers the committed transcript, or None when the engine did not
open a stream for this turn (it answered None, or failed to open): the session then
transcribes the turn's audio at its end, as without streaming. A stream dropped before its
commit (the buffer cleared, the session closed) is closed with `aclose`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from providers.errors import ProviderError
from providers.speech.base import Transcript
from providers.speech.streaming_stt import STTStream

log = logging.getLogger("patchbay.voice")
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class StreamedTurn:
    def __init__(self, turn_id: str, opening: Awaitable[STTStream | None], spawn: Spawn) -> None:
        self.turn_id = turn_id
        """The turn this stream will be (its segment is billed to it)."""
        self._stream: STTStream | None = None
        self._pending: list[bytes] | None = []
        """Audio fed before the stream opened; None once it has (or failed to)."""
        self._closed = False
        self._opening: asyncio.Task[STTStream | None] = spawn(self._open(opening))
        if isinstance(opening, Coroutine):
            # A session closing at once cancels the task before it ran: close what it would
            # have awaited, so it is not left un-awaited (a no-op once it ran).
            self._opening.add_done_callback(lambda _: opening.close())

    @property
    def partial(self) -> str:
        """The provider's latest interim transcript of the turn ("" before any)."""
        return self._stream.partial if self._stream is not None else ""

    def feed(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return
        if self._pending is not None:
            self._pending.append(pcm)
        elif self._stream is not None:
            self._stream.feed(pcm)

    async def _open(self, opening: Awaitable[STTStream | None]) -> STTStream | None:
        try:
            stream = await opening
        except Exception as exc:
            # The turn is transcribed at its end instead, where a failure is reported.
            kind = exc.error_class.value if isinstance(exc, ProviderError) else type(exc).__name__
            log.warning("stt stream did not open", extra={"fields": {"error_class": kind}})
            stream = None
        pending, self._pending = self._pending or [], None
        if stream is not None:
            if self._closed:
                await stream.aclose()
                return None
            stream.feed(b"".join(pending))
        self._stream = stream
        return stream

    async def opened(self) -> bool:
        """Whether a stream opened for the turn (waits for the opening to end)."""
        return await self._opening is not None

    async def commit(self) -> Transcript | None:
        """The committed transcript of the turn, or None when no stream opened for it."""
        stream = await self._opening
        if stream is None:
            return None
        try:
            return await stream.commit()
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        """Drop the turn's stream (idempotent). One still opening is closed when it opens,
        so that whatever it holds (a connection, a routed segment's hold) is given back."""
        self._closed = True
        if self._stream is not None:
            await self._stream.aclose()
