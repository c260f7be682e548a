"""Twilio's side of a phone call in tests: the webhook's form, the TwiML it gets back, and a
`Phone` that plays Twilio on the media stream.

A `Phone` sends `connected`, `start` with the parameters the TwiML handed out, 20 ms µ-law
frames of espeak speech, and the echo of each `mark` once the audio before it counts as played.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import orjson
import websockets

from tests.voice.speech import silence, speak
from voice.audio import ULAW_8K, encode_from_pcm16, resample

FRAME = 160  # bytes of µ-law 8 kHz in a 20 ms Twilio frame


CALL = {"CallSid": "CA0123", "From": "+15550100", "To": "+15550199"}
"""Twilio's form fields on the webhook and on its redirects (the `Phone` starts streams of CA0123)."""


def ulaw(text: str, trailing_ms: int = 800) -> bytes:
    pcm = resample(silence(300) + speak(text) + silence(trailing_ms), 16_000, 8_000)
    return encode_from_pcm16(pcm, ULAW_8K)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Phone:
    """Twilio's side of a media stream."""

    def __init__(self, ws: websockets.ClientConnection, sid: str = "MZ0123") -> None:
        self.ws = ws
        self.sid = sid
        self.audio = bytearray()
        self.marks: list[tuple[str, int]] = []
        """(name, audio bytes received before it)"""
        self.cleared = 0
        self.kinds: list[str] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def start(
        self, parameters: dict[str, str], *, encoding: str = "audio/x-mulaw", rate: int = 8000
    ) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": self.sid,
                "start": {
                    "streamSid": self.sid,
                    "accountSid": "AC0123",
                    "callSid": "CA0123",
                    "tracks": ["inbound"],
                    "customParameters": parameters,
                    "mediaFormat": {"encoding": encoding, "sampleRate": rate, "channels": 1},
                },
            }
        )

    async def say(self, audio: bytes) -> None:
        for n, offset in enumerate(range(0, len(audio), FRAME)):
            payload = base64.b64encode(audio[offset : offset + FRAME]).decode()
            await self.send(
                {
                    "event": "media",
                    "sequenceNumber": str(n + 2),
                    "streamSid": self.sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(n + 1),
                        "timestamp": str(n * 20),
                        "payload": payload,
                    },
                }
            )

    async def recv(self, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            message: dict[str, Any] = orjson.loads(await self.ws.recv())
        assert message["streamSid"] == self.sid
        self.kinds.append(message["event"])
        if message["event"] == "media":
            self.audio += base64.b64decode(message["media"]["payload"])
        elif message["event"] == "mark":
            self.marks.append((message["mark"]["name"], len(self.audio)))
        elif message["event"] == "clear":
            self.cleared += 1
        return message

    async def until(self, done: Callable[[dict[str, Any]], bool], within: float = 10.0) -> None:
        while not done(await self.recv(within)):
            pass

    def replied(self, replies: int = 1) -> bool:
        """Whether the last audio of `replies` replies has arrived (each ends with an `end` mark)."""
        return sum(name.endswith(":end") for name, _ in self.marks) >= replies

    async def hang_up(self, within: float = 10.0) -> None:
        """The caller hangs up: Twilio sends `stop`, and the server closes the stream once it has
        ended the call (its checkpoint deleted), so nothing of the call is left running."""
        stop = {"accountSid": "AC0123", "callSid": "CA0123"}
        with contextlib.suppress(websockets.ConnectionClosed):  # already closed: nothing to end
            await self.send({"event": "stop", "sequenceNumber": "99", "streamSid": self.sid, "stop": stop})
            while True:
                await self.recv(within)

    async def played(self, name: str) -> None:
        """Twilio's echo: the audio queued before mark `name` has played."""
        await self.send(
            {"event": "mark", "streamSid": self.sid, "sequenceNumber": "0", "mark": {"name": name}}
        )


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert root.tag == "Response" and stream is not None
    return stream.attrib["url"], {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}


def redirect_of(twiml: str) -> str:
    redirect = ET.fromstring(twiml).find("./Redirect")
    assert redirect is not None and redirect.attrib["method"] == "POST" and redirect.text
    return redirect.text
