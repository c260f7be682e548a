"""Part of bench/voice.py: the load. Caller processes, each running N realtime sessions on one
clock, streaming a spoken question and silence in pre-encoded 20 ms frames stamped with their
send slot, and collecting each turn's server-added latency from `response.done`.

With `--wire twilio` each session is a phone call instead, as Twilio places it: the webhook's
TwiML, a media stream with `connected` and `start`, then µ-law 8 kHz `media` messages whose
`sequenceNumber` carries the send slot, and each `mark` echoed as soon as it arrives (the
caller hears every reply at once, so no reply is ever cut short).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from multiprocessing.connection import Connection
from xml.etree import ElementTree

import httpx
import orjson
import websockets

FRAME_MS = 20
ARRIVALS = 100.0
"""New sessions a second, per caller process, while a level's sessions connect."""
PHASES = 4
QUESTION = "What time does the pharmacy close on Sunday?"
STAMP = '{"event_id":"bench-'
"""Every caller frame starts so; the send slot follows, then the rest of the append event."""
TWILIO_STAMP = '{"event":"media","sequenceNumber":"'
"""Every phone caller's frame starts so; the send slot follows, then the rest of the message."""
WIRES = ("realtime", "twilio")


def frames(wire: str = "realtime") -> list[bytes]:
    """One turn of frames without their stamp: the question, then 1.2 s of silence; append
    events of 24 kHz PCM16, or Twilio `media` messages of µ-law 8 kHz."""
    from tests.voice.speech import silence, speak
    from voice.audio import ULAW_8K, encode_from_pcm16, resample

    # Silence only (BENCH_SILENT): no turns, so the server's cost is the per-frame path alone.
    pcm = silence(4200) if os.environ.get("BENCH_SILENT") else speak(QUESTION) + silence(1200)
    if wire == "twilio":
        audio = encode_from_pcm16(resample(pcm, 16_000, 8_000), ULAW_8K)
        step = 8_000 * FRAME_MS // 1000
        head = b'","streamSid":"MZbench","media":{"track":"inbound","payload":"'
        return [
            head + base64.b64encode(audio[i : i + step]) + b'"}}'
            for i in range(0, len(audio) - step + 1, step)
        ]
    pcm = resample(pcm, 16_000, 24_000)
    step = 24_000 * 2 * FRAME_MS // 1000
    return [
        b'","type":"input_audio_buffer.append","audio":"' + base64.b64encode(pcm[i : i + step]) + b'"}'
        for i in range(0, len(pcm) - step + 1, step)
    ]


async def _phone_call(http: httpx.AsyncClient, key: str, call_sid: str) -> websockets.ClientConnection:
    """A call as Twilio places it: the webhook's TwiML, then its media stream, started."""
    form = {"CallSid": call_sid, "From": "+15550100", "To": "+15550199"}
    answered = await http.post("/v1/twilio/voice", data=form, auth=("twilio", key))
    answered.raise_for_status()
    stream = ElementTree.fromstring(answered.text).find("./Connect/Stream")
    assert stream is not None, answered.text
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    ws = await websockets.connect(stream.attrib["url"], max_size=None)
    await ws.send(orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).decode())
    start = {
        "streamSid": "MZbench",
        "callSid": call_sid,
        "customParameters": parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    await ws.send(orjson.dumps({"event": "start", "sequenceNumber": "1", "start": start}).decode())
    return ws


def _text_frame(payload: bytes) -> bytes:
    """One final text frame as a client sends it, masked with the all-zero key.

    RFC 6455 lets a client pick any masking key; zero leaves the payload as it is, so the
    callers skip the XOR pass `websockets` would make over every byte. The server unmasks as
    it would any frame. The callers share the cores with the server: every microsecond they
    spend is one the server does not get (with `websockets.send` they took about a quarter
    of a core at N=300).
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 65536:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Caller:
    def __init__(self, ws: websockets.ClientConnection, offset: int) -> None:
        self.ws = ws
        # Frames go straight to the socket, past the connection's send path (nothing else
        # sends on it while it streams; replies are read through `ws` as usual).
        self.transport: asyncio.WriteTransport = ws.transport
        self.offset = offset
        self.server_ms: list[float] = []

    async def read(self) -> None:
        async for message in self.ws:
            if message.startswith('{"event":"mark"'):  # a phone call's: heard at once
                self.transport.write(_text_frame(message.encode() if isinstance(message, str) else message))
            elif '"response.done"' in message[:60]:
                metadata = orjson.loads(message)["response"].get("metadata") or {}
                if metadata.get("server_ms") is not None:
                    self.server_ms.append(metadata["server_ms"])
                    if os.environ.get("BENCH_VERBOSE"):
                        print(metadata)


def run_callers(
    n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection, wire: str = "realtime"
) -> None:
    import uvloop

    uvloop.run(_call(n, seed, url, key, turn, control, wire))


async def _call(
    n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection, wire: str
) -> None:
    """One caller process: N sessions on one clock, each at its own offset in the turn.

    Callers are spread over 4 phases of the 20 ms frame (real callers are not in step; one
    burst of N messages would make every turn queue behind N frames). One task sends for all
    of them; N sleeping tasks would cost the callers more CPU than the server spends. The
    client offers permessage-deflate, as the openai SDK's does; `patchbay serve` declines it.
    """
    rng = random.Random(seed)
    headers = {"authorization": f"Bearer {key}"}
    # Calls arrive one after another, as real ones do (ARRIVALS a second), not in one burst:
    # a burst lands on whichever worker happens to be waiting in accept() at that moment.
    opened = time.monotonic()
    http = httpx.AsyncClient(base_url=url, timeout=30) if wire == "twilio" else None  # the webhook

    async def open_one(i: int) -> Caller:
        await asyncio.sleep(max(0.0, opened + i / ARRIVALS - time.monotonic()))
        if http is not None:
            ws = await _phone_call(http, key, f"CAbench{seed}x{i}")
        else:
            ws = await websockets.connect(url, additional_headers=headers, max_size=None)
        return Caller(ws, rng.randrange(len(turn)))

    callers = await asyncio.gather(*(open_one(i) for i in range(n)))
    if http is not None:
        await http.aclose()
    stamp_head = TWILIO_STAMP if wire == "twilio" else STAMP
    readers = [asyncio.ensure_future(c.read()) for c in callers]
    control.send("ready")
    start, seconds = control.recv()
    cpu_before = sum(os.times()[:2])
    sent = 0
    worst = 0.0
    phases = [callers[p::PHASES] for p in range(PHASES)]
    index = 0
    while (tick := start + index * FRAME_MS / 1000) < start + seconds:
        for phase, group in enumerate(phases):
            slot = tick + phase * FRAME_MS / 1000 / PHASES
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = f"{stamp_head}{slot:.6f}".encode()
            worst = max(worst, (time.monotonic() - slot) * 1000)
            for c in group:
                c.transport.write(_text_frame(stamp + turn[(index + c.offset) % len(turn)]))
                sent += 1
        index += 1
    cpu = sum(os.times()[:2]) - cpu_before
    control.recv()  # the server's figures are taken; now leave
    for c in callers:
        if wire == "twilio":  # the caller hangs up: Twilio's `stop`, not a dropped stream
            c.transport.write(_text_frame(b'{"event":"stop","streamSid":"MZbench","stop":{}}'))
        await c.ws.close()
    for reader in readers:
        reader.cancel()
    server_ms = [ms for c in callers for ms in c.server_ms]
    control.send({"server_ms": server_ms, "sent": sent, "worst": worst, "cpu_s": cpu})
