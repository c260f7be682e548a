"""Server CPU to send a burst of realtime events: one ASGI send each, or one socket write.

A voice reply's events mostly leave together: transcript deltas, audio deltas, item and
response events. One uvicorn server, with the WebSocket protocol `patchbay serve` runs, sends
bursts of such frames (a transcript delta of ~200 bytes and an audio delta of 80 ms of 24 kHz
PCM, ~5.3 KB, in turn) to one client in another process that reads everything. Two ways,
alternated round by round in the same process, so a drift in the machine's speed reaches both:
- `asgi`: one ASGI `websocket.send` per frame, straight to uvicorn's `send`. This is a lower
  bound of what the realtime writer paid before: the server also went through Starlette's
  `WebSocket.send_text` and the request-id middleware's wrapper for every frame.
- `direct`: the whole burst through `DirectMessages.send_texts`, one socket write.
The figure is the server thread's CPU time (`time.thread_time`) per burst, median over rounds.

    .venv/bin/python bench/voice_send.py [--frames 6] [--rounds 40] [--bursts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

CLIENT = """
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        async for _ in ws:
            pass
asyncio.run(main())
"""


def burst(frames: int) -> list[bytes]:
    """`frames` realtime events, a transcript delta and an audio delta in turn."""
    head = {"response_id": "resp_bench", "item_id": "item_bench", "output_index": 0, "content_index": 0}
    text = orjson.dumps(
        {"type": "response.output_audio_transcript.delta", **head, "delta": "Sure, ", "event_id": "event_1"}
    )
    audio = orjson.dumps(
        {
            "type": "response.output_audio.delta",
            **head,
            "delta": base64.b64encode(os.urandom(3840)).decode(),
            "event_id": "event_2",
        }
    )
    return [text if i % 2 == 0 else audio for i in range(frames)]


class Sender:
    """The ASGI app: once a client connects, times both ways of sending and closes."""

    def __init__(self, frames: list[bytes], rounds: int, bursts: int) -> None:
        self.frames, self.rounds, self.bursts = frames, rounds, bursts
        self.cpu_us: dict[str, list[float]] = {"asgi": [], "direct": []}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from server.websocket_direct import DIRECT

        await receive()
        await send({"type": "websocket.accept"})
        direct = scope["extensions"][DIRECT]
        texts = [frame.decode() for frame in self.frames]
        for round_ in range(self.rounds):
            for way in ("asgi", "direct") if round_ % 2 else ("direct", "asgi"):
                started = time.thread_time()
                for _ in range(self.bursts):
                    if way == "asgi":
                        for text in texts:
                            await send({"type": "websocket.send", "text": text})
                    else:
                        await direct.send_texts(self.frames)
                    await asyncio.sleep(0)  # let the loop run between bursts, as between replies
                self.cpu_us[way].append((time.thread_time() - started) / self.bursts * 1e6)
        await send({"type": "websocket.close", "code": 1000})


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    import uvicorn

    from server.serve import WEBSOCKET_PROTOCOL
    from tests.serving import uvicorn_in_loop

    app = Sender(burst(args.frames), args.rounds, args.bursts)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,  # a free one, bound before the server starts (tests/serving.py)
        lifespan="off",
        log_level="warning",
        ws=WEBSOCKET_PROTOCOL,
        ws_per_message_deflate=False,
    )
    async with uvicorn_in_loop(config):
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{config.port}/"
        )
        await client.wait()
    return app.cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring.")
    parser.add_argument("--frames", type=int, default=6, help="frames per burst")
    parser.add_argument("--rounds", type=int, default=40, help="rounds, each timing both ways")
    parser.add_argument("--bursts", type=int, default=200, help="bursts per way per round")
    args = parser.parse_args()
    import uvloop

    cpu = uvloop.run(measure(args))
    for way, figures in cpu.items():
        print(
            f"{way:>6}: {statistics.median(figures):7.1f} us of server CPU per burst of {args.frames} frames"
            f" (median of {len(figures)} rounds; lowest {min(figures):.1f})"
        )


if __name__ == "__main__":
    main()
