"""ElevenLabs realtime speech-to-text (Scribe v2 Realtime): one WebSocket per utterance.

The caller's audio goes up while they speak, so at the endpoint only the commit and the
provider's last decode remain (the batch Scribe engine, `providers.speech.elevenlabs`, uploads
the whole turn then and waits for its whole decode). Wire in `elevenlabs_realtime_wire`.

The official SDK has an asyncio helper for this endpoint (`speech_to_text.realtime.connect`),
but it reports failures only to callbacks (printing their exceptions), never as an error the
caller can await, and logs through `websockets`' default logger (the upgrade headers hold the
key). The wire is spoken here with the `websockets` asyncio client; the SDK's own client and
types check the emulator (tests/emulators/elevenlabs_stt_ws.py) instead.

`open_stream` connects and waits for `session_started` (a refused key arrives as an
`auth_error` message, not a refused upgrade), so a failure shows while the caller is still
speaking and the next engine can be chosen. `feed` queues audio; a writer task resamples it to
the rate the session declared (the caller's own rate where the endpoint takes it, so usually
nothing is resampled) and sends it in order. `commit` sends the commit after the last audio
and waits up to `commit_within` for the committed transcript. `ElevenLabsRealtimeSTT` is also
a batch engine (`transcribe` opens a stream, feeds the segment and commits), so the model works
wherever an STT engine does.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from providers.auth import add_auth_header
from providers.contract import AuthStyle, BillingSource, ErrorClass
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.redaction import secrets_in
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript
from providers.speech.elevenlabs_realtime_wire import (
    DEFAULT_MODEL,
    EMPTY_AUDIO,
    Committed,
    Failure,
    Partial,
    Started,
    audio_message,
    chunks,
    commit_message,
    parse_server_message,
    realtime_url,
    wire_rate,
)
from providers.speech.elevenlabs_ws_wire import stream_error
from providers.speech.pcm import Resampler
from providers.speech.streaming_stt import STTStream
from providers.speech.ws_connect import open_socket
from providers.upstream_pool import CheckedResolve

CONNECT_TIMEOUT = 5.0
COMMIT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ElevenLabsRealtimeOptions:
    model_id: str = DEFAULT_MODEL

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("model_id must be non-empty")


class ElevenLabsRealtimeSTT(STTEngine):
    def __init__(
        self,
        *,
        base_url: str,
        credential: Credential,
        name: str = "elevenlabs:default",
        billing_source: BillingSource = BillingSource.BYOK,
        options: ElevenLabsRealtimeOptions | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        resolve: CheckedResolve | None = None,
        commit_within: float = COMMIT_TIMEOUT,
    ) -> None:
        self.name = name
        self.billing_source = billing_source
        self.options = options or ElevenLabsRealtimeOptions()
        self.connect_timeout = connect_timeout
        self.commit_within = commit_within
        self._base_url = base_url
        self._credential = credential
        self._resolve = resolve

    async def open_stream(
        self, *, sample_rate: int, language: str | None = None, turn_id: str | None = None
    ) -> ElevenLabsSTTStream:
        headers: dict[str, str] = {}
        add_auth_header(headers, AuthStyle.XI_API_KEY, self._credential, "stt")
        rate = wire_rate(sample_rate)
        url = realtime_url(
            self._base_url, model_id=self.options.model_id, sample_rate=rate, language=language
        )
        try:
            ws = await open_socket(
                url, headers, provider=self.name, open_within=self.connect_timeout, resolve=self._resolve
            )
        except ProviderError as exc:
            exc.model = exc.model or self.options.model_id
            raise
        stream = ElevenLabsSTTStream(self, ws, secrets_in(headers), sample_rate, rate)
        try:
            await stream.started(self.connect_timeout)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        stream = await self.open_stream(sample_rate=STT_SAMPLE_RATE, language=language)
        try:
            stream.feed(pcm16_16k)
            return await stream.commit()
        finally:
            await stream.aclose()


class ElevenLabsSTTStream(STTStream):
    def __init__(
        self,
        engine: ElevenLabsRealtimeSTT,
        ws: ClientConnection,
        secrets: tuple[str, ...],
        sample_rate: int,
        rate: int,
    ) -> None:
        self.name = engine.name
        self.billing_source = engine.billing_source
        self.sample_rate = sample_rate
        self.model = engine.options.model_id
        self._commit_within = engine.commit_within
        self._ws = ws
        self._secrets = secrets
        self._rate = rate
        self._resampler = Resampler(sample_rate, rate) if rate != sample_rate else None
        self._fed = 0
        self._partial = ""
        self._text: str | None = None
        self._language: str | None = None
        self._failure: ProviderError | None = None
        self._committing = False
        self._closed = False
        self._open = asyncio.Event()
        self._done = asyncio.Event()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._writer = asyncio.create_task(self._write())

    @property
    def fed_seconds(self) -> float:
        return self._fed / (2 * self.sample_rate)

    @property
    def partial(self) -> str:
        return self._partial

    def feed(self, pcm: bytes) -> None:
        if self._committing or self._closed or not pcm:
            return
        self._fed += len(pcm)
        self._queue.put_nowait(pcm)

    async def started(self, within: float) -> None:
        """Wait for `session_started`; the provider's refusal (or silence) as a `ProviderError`."""
        try:
            async with asyncio.timeout(within):
                await self._open.wait()
        except TimeoutError:
            raise self._error(ErrorClass.TIMEOUT, f"no session_started within {within:g} s") from None
        if self._failure is not None:
            raise self._failure

    async def commit(self) -> Transcript:
        if not self._committing:
            self._committing = True
            self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(self._commit_within):
                await self._done.wait()
        except TimeoutError:
            raise self._error(
                ErrorClass.TIMEOUT, f"no committed transcript within {self._commit_within:g} s"
            ) from None
        if self._text is None:
            assert self._failure is not None
            raise self._failure
        return Transcript(
            text=self._text,
            audio_seconds=self.fed_seconds,
            engine=self.name,
            model=self.model,
            language=self._language,
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._ws.close()
        self._reader.cancel()
        for task in (self._writer, self._reader):
            with contextlib.suppress(BaseException):
                await task

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                event = parse_server_message(raw)
                if isinstance(event, Started):
                    self._open.set()
                elif isinstance(event, Partial):
                    self._partial = event.text
                elif isinstance(event, Committed):
                    self._finish(event.text, event.language)
                elif isinstance(event, Failure) and event.code == EMPTY_AUDIO:
                    self._finish("", None)
                elif isinstance(event, Failure):
                    # An unknown error type is the provider's fault (1011), not the network's.
                    self._fail(
                        stream_error(
                            provider=self.name,
                            close_code=1011,
                            message=event.message,
                            code=event.code,
                            secrets=self._secrets,
                        )
                    )
            self._fail(self._error(ErrorClass.NETWORK, "the provider closed the connection"))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            self._fail(
                stream_error(provider=self.name, close_code=code, message=reason, secrets=self._secrets)
            )

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):  # the reader reports why it ended
            while True:
                parts = [await self._queue.get()]
                while parts[-1] is not None and not self._queue.empty():
                    parts.append(self._queue.get_nowait())
                commit = parts[-1] is None
                pcm = b"".join(p for p in parts if p is not None)
                if self._resampler is not None:
                    pcm = self._resampler.process(pcm) + (self._resampler.flush() if commit else b"")
                for piece in chunks(pcm):
                    await self._ws.send(audio_message(piece, self._rate), text=True)
                if commit:
                    await self._ws.send(commit_message(self._rate), text=True)
                    return

    def _finish(self, text: str, language: str | None) -> None:
        if self._text is None and self._failure is None:
            self._text, self._language = text, language
            self._done.set()

    def _fail(self, error: ProviderError) -> None:
        if self._text is None and self._failure is None:
            error.model = error.model or self.model
            self._failure = error
            self._open.set()
            self._done.set()

    def _error(self, error_class: ErrorClass, message: str) -> ProviderError:
        return ProviderError(error_class, message, provider=self.name, model=self.model)
