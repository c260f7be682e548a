"""ElevenLabs streamed TTS: one `stream-input` WebSocket per reply (wire in `elevenlabs_ws_wire`).

The official SDK's helper for this endpoint (`text_to_speech.convert_realtime`) is blocking
(`websockets.sync`) and forces `wss`, so it cannot run inside the server's event loop or
against the local emulator; the wire is spoken here with the `websockets` asyncio client and
the emulator's messages are checked against the SDK's types instead.

`ElevenLabsStreamTTS.open_stream` connects, sends the init message and returns the stream
while the LLM is still thinking, so neither the handshake nor the provider's set-up is on the
path to the first audio. `send` passes the reply's words on as they are written; the provider
buffers them and generates by its `chunk_length_schedule` (mirrored in `GenerationSchedule`),
on a flush, or at the end. Reading `audio()` decodes each message (PCM as is, G.711 to PCM16),
keeps samples whole across messages, and fails with a TIMEOUT when a generation was due and
nothing came back within `first_audio` seconds (text waiting in the provider's buffer for
more is not late). Connecting (and the library's silenced logging: it would log the key and
the reply's text) is `providers.speech.ws_connect.open_socket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from providers.auth import add_auth_header
from providers.contract import AuthStyle, BillingSource, ErrorClass
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.redaction import secrets_in
from providers.speech.elevenlabs import ElevenLabsTTSOptions, audio_format_for
from providers.speech.elevenlabs_ws_wire import (
    CLOSE_INPUT,
    AudioChunk,
    Failure,
    Final,
    GenerationSchedule,
    init_message,
    parse_server_message,
    stream_error,
    stream_input_url,
    text_message,
    wire_text,
)
from providers.speech.pcm import g711_decode
from providers.speech.streaming import SpokenAudio, TTSStream
from providers.speech.ws_connect import open_socket
from providers.upstream_pool import CheckedResolve

CONNECT_TIMEOUT = 5.0
FIRST_AUDIO_TIMEOUT = 5.0
_IDLE_POLL = 0.25


class ElevenLabsStreamTTS:
    """Opens `ElevenLabsTTSStream`s for one connection (base URL, key, options)."""

    def __init__(
        self,
        *,
        base_url: str,
        credential: Credential,
        name: str = "elevenlabs:default",
        billing_source: BillingSource = BillingSource.BYOK,
        options: ElevenLabsTTSOptions | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        resolve: CheckedResolve | None = None,
        first_audio: float = FIRST_AUDIO_TIMEOUT,
    ) -> None:
        self.name = name
        self.billing_source = billing_source
        self.options = options or ElevenLabsTTSOptions()
        self.sample_rate = audio_format_for(self.options.output_format).sample_rate
        self._base_url = base_url
        self._credential = credential
        self._resolve = resolve
        self._connect_timeout = connect_timeout
        self._first_audio = first_audio

    async def open_stream(self, *, voice: str | None = None, turn_id: str | None = None) -> TTSStream:
        headers: dict[str, str] = {}
        add_auth_header(headers, AuthStyle.XI_API_KEY, self._credential, "tts")
        secrets = secrets_in(headers)
        url = stream_input_url(self._base_url, voice or self.options.voice_id, self.options)
        ws = await open_socket(
            url, headers, provider=self.name, open_within=self._connect_timeout, resolve=self._resolve
        )
        stream = ElevenLabsTTSStream(self, ws, secrets)
        try:
            await ws.send(init_message(self.options), text=True)
        except ConnectionClosed as exc:
            await stream.aclose()
            raise stream_error(provider=self.name, close_code=exc.rcvd.code if exc.rcvd else None) from None
        return stream


class ElevenLabsTTSStream(TTSStream):
    def __init__(self, engine: ElevenLabsStreamTTS, ws: ClientConnection, secrets: tuple[str, ...]) -> None:
        self.name = engine.name
        self.billing_source = engine.billing_source
        self.sample_rate = engine.sample_rate
        self.model = engine.options.model_id
        self._law = audio_format_for(engine.options.output_format).encoding
        self._first_audio = engine._first_audio
        self._ws = ws
        self._secrets = secrets
        self._ended = False
        self._closed = False
        self._schedule = GenerationSchedule(engine.options.chunk_length_schedule)
        self._sent = 0
        self._last_send: float | None = None
        """When a generation was asked for that no audio has answered yet."""
        self._last_audio = 0.0

    async def send(self, text: str, *, flush: bool = False) -> bool:
        message = wire_text(text)
        if self._ended or not (message or flush):
            return False
        if not message and not self._schedule.buffered:
            return False  # a flush with nothing buffered generates nothing
        self._sent += len(message)
        self.characters = max(self._sent - 1, 0)  # the text as sent, less its closing space
        generates = self._schedule.add(len(message), flush=flush)
        if generates:
            self._expect_audio()
        await self._send(text_message(message or " ", flush=flush))
        return generates

    async def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._schedule.add(0, flush=True):
            self._expect_audio()  # the end generates what is still buffered
        await self._send(CLOSE_INPUT)

    def _expect_audio(self) -> None:
        """A generation was asked for: its audio is due within `first_audio` (unless audio is
        already on its way for an earlier one)."""
        if self._last_send is None or self._last_audio >= self._last_send:
            self._last_send = time.monotonic()

    async def _send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):  # the reader reports why it ended
            await self._ws.send(message, text=True)

    async def audio(self) -> AsyncIterator[SpokenAudio]:
        pending = b""
        while True:
            try:
                raw = await self._receive()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == 1000 and self._ended:
                    return
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                raise stream_error(
                    provider=self.name, close_code=code, message=reason, secrets=self._secrets
                ) from None
            event = parse_server_message(raw)
            if isinstance(event, Failure):
                raise stream_error(
                    provider=self.name,
                    close_code=None,
                    message=event.message,
                    code=event.code,
                    secrets=self._secrets,
                )
            if isinstance(event, Final):
                return
            if isinstance(event, AudioChunk):
                self._last_audio = time.monotonic()
                data = event.audio if self._law == "pcm16" else g711_decode(event.audio, self._law)
                data = pending + data
                whole = len(data) - len(data) % 2
                pending = data[whole:]
                if whole:
                    yield SpokenAudio(data[:whole], event.text)

    async def _receive(self) -> str | bytes:
        """The next message; a TIMEOUT when a generation waits for audio longer than `first_audio`.

        While none waits, the wait is re-armed every `_IDLE_POLL` seconds so that a generation
        asked for meanwhile starts its clock (cancelling `recv` loses no message, per `websockets`)."""
        while True:
            waiting = self._last_send is not None and self._last_send > self._last_audio
            left = (
                self._first_audio - (time.monotonic() - self._last_send)
                if waiting and self._last_send
                else _IDLE_POLL
            )
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    return await self._ws.recv()
            except TimeoutError:
                if waiting:
                    raise ProviderError(
                        ErrorClass.TIMEOUT,
                        f"no audio within {self._first_audio:g} s of the text",
                        provider=self.name,
                    ) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._ws.close()
