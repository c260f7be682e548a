"""Part of bench/voice.py: the load. Caller processes, each running N realtime sessions on one
clock, streaming a spoken question and silence in pre-encoded 20 ms frames stamped with their
send slot, and collecting each turn's server-added latency from `response.done`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from multiprocessing.connection import Connection

import orjson
import websockets

FRAME_MS = 20
ARRIVALS = 100.0
"""New sessions a second, per caller process, while a level's sessions connect."""
PHASES = 4
QUESTION = "What time does the pharmacy close on Sunday?"
STAMP = '{"event_id":"bench-'
"""Every caller frame starts so; the send slot follows, then the rest of the append event."""


def frames() -> list[bytes]:
    """One turn of append events without their stamp: the question, then 1.2 s of silence."""
    from tests.voice.speech import silence, speak
    from voice.audio import resample

    if os.environ.get("BENCH_SILENT"):
        # Silence only: no turns, so the server's cost is the per-frame path alone.
        pcm = resample(silence(4200), 16_000, 24_000)
    else:
        pcm = resample(speak(QUESTION) + silence(1200), 16_000, 24_000)
    step = 24_000 * 2 * FRAME_MS // 1000
    return [
        b'","type":"input_audio_buffer.append","audio":"' + base64.b64encode(pcm[i : i + step]) + b'"}'
        for i in range(0, len(pcm) - step + 1, step)
    ]


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
            if '"response.done"' in message[:60]:
                metadata = orjson.loads(message)["response"].get("metadata") or {}
                if metadata.get("server_ms") is not None:
                    self.server_ms.append(metadata["server_ms"])
                    if os.environ.get("BENCH_VERBOSE"):
                        print(metadata)


def run_callers(n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection) -> None:
    import uvloop

    uvloop.run(_call(n, seed, url, key, turn, control))


async def _call(n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection) -> None:
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

    async def open_one(i: int) -> Caller:
        await asyncio.sleep(max(0.0, opened + i / ARRIVALS - time.monotonic()))
        ws = await websockets.connect(url, additional_headers=headers, max_size=None)
        return Caller(ws, rng.randrange(len(turn)))

    callers = await asyncio.gather(*(open_one(i) for i in range(n)))
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
            stamp = f"{STAMP}{slot:.6f}".encode()
            worst = max(worst, (time.monotonic() - slot) * 1000)
            for c in group:
                c.transport.write(_text_frame(stamp + turn[(index + c.offset) % len(turn)]))
                sent += 1
        index += 1
    cpu = sum(os.times()[:2]) - cpu_before
    control.recv()  # the server's figures are taken; now leave
    for c in callers:
        await c.ws.close()
    for reader in readers:
        reader.cancel()
    server_ms = [ms for c in callers for ms in c.server_ms]
    control.send({"server_ms": server_ms, "sent": sent, "worst": worst, "cpu_s": cpu})
