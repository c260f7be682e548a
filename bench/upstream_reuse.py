"""What a kept upstream connection saves: a request over TLS on a pooled connection against one
that opens a new connection each time, through Patchbay's upstream client.

A one-worker uvicorn serves HTTPS on loopback with a self-signed ECDSA P-256 certificate made
for the run (TLS 1.3, as the providers' endpoints negotiate). This process sends `--requests`
sequential requests with `providers.http.request` (the aiohttp backend every adapter uses),
once with the default pool and once with a connector that closes each connection after its
response, and prints the client's CPU and the p50 latency per request, for several rounds.

Loopback has no network delay, so the latency column is a floor: against a provider, a new
connection also waits one round trip for TCP and one for TLS 1.3 before the request goes out.
The figures are in docs/performance.md, "Streams kept their upstream connection".

    .venv/bin/python bench/upstream_reuse.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as g  # the benchmark next to this file

from tests.emulators.tls import self_signed_certificate  # importable once gateway put the tree first


def serve(port: int, cert: str, key: str) -> None:
    """The `server` role: a one-worker uvicorn answering every POST with a small JSON body."""
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )


async def measure(url: str, cert: Path, *, kept: bool, requests: int) -> tuple[float, float]:
    """(client CPU ms, p50 ms) per request."""
    import aiohttp

    from providers.http import Timeouts, request
    from providers.upstream_pool import UpstreamClients

    context = ssl.create_default_context(cafile=str(cert))

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, force_close=not kept))

    async with UpstreamClients(session_factory=session) as clients:

        async def one() -> float:
            started = time.perf_counter()
            reply = await request(
                clients,
                "POST",
                url,
                headers={"content-type": "application/json"},
                body=b"{}",
                timeouts=Timeouts(),
                provider="bench",
            )
            if reply.status != 200:
                raise RuntimeError(f"status {reply.status}")
            return time.perf_counter() - started

        for _ in range(20):  # warm-up: imports, the first handshake
            await one()
        cpu = time.process_time()
        latencies = [await one() for _ in range(requests)]
        cpu = time.process_time() - cpu
    return cpu * 1000 / requests, statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("role", nargs="?", choices=["server"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.port, args.cert, args.key)
        return
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed_certificate(Path(tmp))
        port = g.free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "server", "--port", str(port), "--cert", str(cert), "--key", str(key)]
        )
        try:
            g.wait_port(port)
            url = f"https://127.0.0.1:{port}/v1/chat/completions"
            print("round  connection  client CPU ms/request  p50 ms", flush=True)
            for round_ in range(1, args.rounds + 1):
                for kept in (True, False):
                    cpu, p50 = uvloop.run(measure(url, cert, kept=kept, requests=args.requests))
                    print(
                        f"{round_:>5}  {'kept' if kept else 'new':<10}  {cpu:>20.3f}  {p50:>6.3f}", flush=True
                    )
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
