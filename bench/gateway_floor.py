"""The floor under bench/gateway.py's figures: what a proxy that does nothing but forward costs.

A minimal ASGI app under the same server as Patchbay (uvicorn, uvloop, httptools, one worker)
reads the request with orjson, sets the model, forwards it to the same OpenAI emulator through
one pooled aiohttp session, and hands the reply back (a stream frame by frame, each parsed and
re-encoded). It has no auth, routing, billing, logging or metrics. The load generator,
emulator and columns are bench/gateway.py's, so its added latency and CPU per request are the
part of Patchbay's figures that the server and client libraries take on this machine. The
standing goals (docs/performance.md) leave the difference for Patchbay's own work.

    .venv/bin/python bench/gateway_floor.py [--seconds 5] [--requests 100000]

The `floor` role is the proxy itself, started by the benchmark in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as g  # the benchmark next to this file


def serve_floor(port: int, upstream: str) -> None:
    import aiohttp
    import orjson
    import uvicorn

    from tests.emulators.harness import read_body

    session: aiohttp.ClientSession | None = None
    upstream_headers = {"authorization": f"Bearer {g.UPSTREAM_KEY}", "content-type": "application/json"}

    async def lifespan(receive: Any, send: Any) -> None:
        nonlocal session
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
                await send({"type": "lifespan.startup.complete"})
            else:
                if session is not None:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        assert session is not None
        body = await read_body(receive)
        request = orjson.loads(body)
        request["model"] = "gpt-4o-mini"
        url = upstream + "/chat/completions"
        async with session.post(url, data=orjson.dumps(request), headers=upstream_headers) as reply:
            if not request.get("stream"):
                out = orjson.dumps(orjson.loads(await reply.read()))
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": out})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            async for line in reply.content:
                if line.startswith(b"data: {"):
                    frame = b"data: " + orjson.dumps(orjson.loads(line[6:])) + b"\n\n"
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None, access_log=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "floor"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--upstream")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.role == "floor":
        serve_floor(args.port, args.upstream)
        return
    env = {**os.environ, "PYTHONPATH": str(g.ROOT)}
    emu_port, floor_port = g.free_port(), g.free_port()
    gateway_script = str(Path(__file__).with_name("gateway.py"))
    procs = [subprocess.Popen([sys.executable, gateway_script, "emulator", "--port", str(emu_port)], env=env)]
    try:
        g.wait_port(emu_port)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "floor",
                    "--port",
                    str(floor_port),
                    "--upstream",
                    f"http://127.0.0.1:{emu_port}/v1",
                ],
                env=env,
            )
        )
        g.wait_port(floor_port)
        print(
            f"emulator :{emu_port}, floor :{floor_port}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        direct = g.Target(
            "direct", f"http://127.0.0.1:{emu_port}/v1/chat/completions", g.UPSTREAM_KEY, "gpt-4o-mini"
        )
        floor = g.Target("floor", f"http://127.0.0.1:{floor_port}/v1/chat/completions", "unused", "default")
        asyncio.run(g.measure(direct, [floor], args.requests, args.seconds, procs[1].pid))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


if __name__ == "__main__":
    main()
