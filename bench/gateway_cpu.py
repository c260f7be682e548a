"""Patchbay's own CPU per routed /v1/chat/completions request, in process, without HTTP.

The app is driven over ASGI by tasks in this process (no uvicorn, no load generator beside it),
routing to the OpenAI emulator in a child process (`bench/gateway.py emulator`: zero delay, a
stream of 20 frames). CPU is this process's `time.process_time()` over a batch at concurrency
`--concurrency`, divided by its requests: the app, its upstream client, its background writers
and the garbage collector, nothing else. Several short rounds, since on a shared machine the
lowest round is the one least disturbed.

    .venv/bin/python bench/gateway_cpu.py [--requests 600] [--rounds 6] [--concurrency 50]

Settings are `bench/gateway.py`'s (`bench_settings`, SQLite, logging at INFO into /dev/null),
BYOK route, and so is `BENCH_TURNS` (the conversation each request carries). It measures the tree it sits in: `bench/gateway.py` puts that tree first on
`sys.path`, so `PYTHONPATH` does not switch the code. To compare trees, run each tree's own
copy of the bench (docs/performance.md, "The young-generation collector and two small cuts").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as g  # the benchmark next to this file


async def seed(settings: Any, upstream: str) -> str:
    from providers.vault.secret import Secret
    from server import accounts
    from server.services import Services

    svc = Services.build(settings)
    try:
        await svc.db.upgrade()
        async with svc.db.session() as s:
            org = await accounts.create_org(s, "bench")
            await svc.connections().create(
                s, org.id, provider="openai", name="main", base_url=upstream, key=Secret(g.UPSTREAM_KEY)
            )
            await svc.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
            key = await accounts.create_api_key(s, org.id, name="bench")
    finally:
        await svc.aclose()
    return key.key


async def run(
    args: argparse.Namespace, upstream: str, data_dir: str, log_stream: Any
) -> dict[str, list[float]]:
    from server.app import create_app
    from server.logs import configure_logging
    from server.services import Services

    settings = g.bench_settings(data_dir)
    configure_logging(settings.log_level, stream=log_stream)  # formatted and written, unseen
    key = await seed(settings, upstream)
    app = create_app(settings, services=Services.build(settings), freeze_gc=True)  # as `patchbay serve`
    async with app.router.lifespan_context(app):
        results = await measure(app, key, args)
        report(results, args.concurrency)  # before shutting down, whatever the shutdown does
        return results


async def measure(app: Any, key: str, args: argparse.Namespace) -> dict[str, list[float]]:
    bodies = {
        stream: json.dumps(
            {
                "model": "default",
                "messages": g.conversation(),
                "stream": stream,
            }
        ).encode()
        for stream in (False, True)
    }

    async def one(stream: bool) -> None:
        body = bodies[stream]
        done = asyncio.Event()
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif not message.get("more_body"):
                done.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"authorization", f"Bearer {key}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        done.set()
        if status != 200:
            raise RuntimeError(f"status {status}")

    async def batch(stream: bool, n: int) -> None:
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                await one(stream)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))

    for stream in (False, True):
        await batch(stream, 300)  # warm-up
    results: dict[str, list[float]] = {"complete": [], "stream": []}
    for _ in range(args.rounds):
        for stream in (False, True):
            started = time.process_time()
            await batch(stream, args.requests)
            results["stream" if stream else "complete"].append(
                (time.process_time() - started) * 1000 / args.requests
            )
    return results


def report(results: dict[str, list[float]], concurrency: int) -> None:
    for mode, values in results.items():
        rounds = " ".join(f"{v:.3f}" for v in values)
        print(f"{mode:<9} c={concurrency} CPU ms/request: {rounds}  min {min(values):.3f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    port = g.free_port()
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(g.ROOT))}
    emulator = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway.py")), "emulator", "--port", str(port)],
        env=env,
    )
    try:
        g.wait_port(port)
        with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
            import uvloop

            uvloop.run(run(args, f"http://127.0.0.1:{port}/v1", tmp, devnull))
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
