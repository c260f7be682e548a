"""What the upstream HTTP client costs a chat request: client CPU per upstream call through
Patchbay's own path, through aiohttp's client alone, and through a bare keep-alive HTTP/1.1
client on asyncio and httptools, all against the same emulator.

`bench/gateway.py`'s OpenAI emulator (its `emulator` role, zero delay) runs in a child process
and answers a non-streamed chat completion. This process sends `--requests` sequential requests
on one kept connection, for each client in turn, and prints this process's CPU per request
(`time.process_time()`, so the emulator's work is not counted) for several rounds:

- `patchbay`: `providers.http.request` on `UpstreamClients`, as every adapter calls it (the
  origin's slots, the watchdog, the response read in full), on its default backend
  (`providers.h1`);
- `patchbay-aiohttp`: the same path with `backend="aiohttp"` (`PATCHBAY_UPSTREAM_CLIENT=aiohttp`);
- `aiohttp`: `ClientSession.post` configured as Patchbay configures it, nothing around it;
- `bare`: the request written in one piece on a kept connection, the reply parsed by httptools.
  A floor for what any client must do, not a client: no pooling, TLS, timeouts or errors.

The difference between the first two and the last is the room a leaner upstream client has on
the chat path's CPU. Figures in docs/performance.md, "What the upstream client costs".

    .venv/bin/python bench/upstream_client.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as g  # the benchmark next to this file

BODY = json.dumps({"model": "gpt-4o-mini", "messages": g.conversation(), "stream": False}).encode()
HEADERS = {"authorization": f"Bearer {g.UPSTREAM_KEY}", "content-type": "application/json"}


async def cpu_per_request(one: Callable[[], Awaitable[None]], requests: int) -> float:
    """Microseconds of this process's CPU per call of `one`, after a warm-up."""
    for _ in range(200):
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    return (time.process_time() - started) * 1e6 / requests


async def through_patchbay(url: str, requests: int, backend: str = "h1") -> float:
    from providers.http import Timeouts, request
    from providers.upstream_pool import UpstreamClients

    async with UpstreamClients(backend=backend) as clients:  # type: ignore[arg-type]

        async def one() -> None:
            reply = await request(
                clients, "POST", url, headers=HEADERS, body=BODY, timeouts=Timeouts(), provider="bench"
            )
            if reply.status != 200:
                raise RuntimeError(f"status {reply.status}")

        return await cpu_per_request(one, requests)


async def through_aiohttp(url: str, requests: int) -> float:
    import aiohttp

    from providers.upstream_pool import upstream_session

    async with upstream_session(aiohttp.TCPConnector(limit=10)) as session:

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS, allow_redirects=False) as reply:
                if reply.status != 200:
                    raise RuntimeError(f"status {reply.status}")
                await reply.read()

        return await cpu_per_request(one, requests)


class _Reply(asyncio.Protocol):
    """One kept connection; `send` writes a request and waits for its whole reply."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bytes] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter, body, self.body = self.waiter, None, b"".join(self.body), []
        if waiter is None:
            return
        status = self.parser.get_status_code()
        if status == 200:
            waiter.set_result(body)
        else:
            waiter.set_exception(RuntimeError(f"status {status}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the emulator closed the connection"))

    async def send(self, request: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def through_bare(host: str, port: int, requests: int) -> float:
    _, connection = await asyncio.get_running_loop().create_connection(_Reply, host, port)
    head = "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n{head}"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY

    async def one() -> None:
        await connection.send(request)

    try:
        return await cpu_per_request(one, requests)
    finally:
        assert connection.transport is not None
        connection.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import uvloop

    port = g.free_port()
    emulator = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway.py")), "emulator", "--port", str(port)]
    )
    try:
        g.wait_port(port)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print("round  client CPU us/request: patchbay  patchbay-aiohttp  aiohttp    bare", flush=True)
        for round_ in range(1, args.rounds + 1):
            ours = uvloop.run(through_patchbay(url, args.requests))
            ours_on_aiohttp = uvloop.run(through_patchbay(url, args.requests, "aiohttp"))
            theirs = uvloop.run(through_aiohttp(url, args.requests))
            bare = uvloop.run(through_bare("127.0.0.1", port, args.requests))
            print(
                f"{round_:>5}  {ours:>31.1f}  {ours_on_aiohttp:>16.1f}  {theirs:>7.1f}  {bare:>6.1f}",
                flush=True,
            )
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
