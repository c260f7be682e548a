"""Provider HTTP client: translation cost and upstream throughput of the `openai-chat` adapter.

1. Pure translation, in µs: building + serialising a request, parsing a completion, and per
   stream chunk (SSE decode + JSON parse + event translation).
2. Upstream throughput through the real adapter against the OpenAI emulator (`fast=True`,
   zero delays) served by uvicorn in a separate process, at concurrency 1 and 50, for
   httpx's own pool, aiohttp's client and Patchbay's own (`h1`), complete and streamed.

Bounded: each throughput cell stops after `CELL_SECONDS` or `CELL_REQUESTS`, whichever comes
first; the whole run takes well under a minute. Run: `.venv/bin/python bench/adapters.py`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import uvicorn

from providers.adapters.base import Endpoint
from providers.adapters.openai_chat import (
    OpenAIChatAdapter,
    StreamTranslator,
    build_request,
    parse_response,
)
from providers.adapters.openai_quirks import quirks_for
from providers.contract import PRESETS, ProviderId
from providers.credentials import NoCredential
from providers.http import Timeouts
from providers.sse import SSEDecoder
from providers.types import ChatRequest, Message, Role, TextPart, ToolSpec
from providers.upstream_pool import Backend, UpstreamClients
from tests.emulators.harness import free_port
from tests.emulators.openai import OpenAIEmulator, Scenario, Wire

CELL_SECONDS = 3.0
CELL_REQUESTS = 20_000
TRANSLATE_ROUNDS = 20_000
REPLY = Scenario(
    text="Sure! Here is a short answer that spans a few dozen tokens, roughly what a voice turn produces "
    "before the first sentence is spoken aloud by the synthesiser."
)

REQUEST = ChatRequest(
    model="gpt-4o-mini",
    messages=(
        Message(Role.SYSTEM, (TextPart("You are a helpful voice agent. Answer briefly."),)),
        *(
            Message(
                Role.USER if i % 2 == 0 else Role.ASSISTANT,
                (TextPart(f"Turn {i}: some conversational text."),),
            )
            for i in range(10)
        ),
    ),
    tools=(
        ToolSpec(
            "get_weather",
            "Weather for a city",
            {"type": "object", "properties": {"city": {"type": "string"}}},
        ),
    ),
    max_output_tokens=256,
)


def per_call_us(fn: Any, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def translation() -> None:
    quirks = quirks_for(ProviderId.OPENAI, "https://api.openai.com/v1")
    wire = Wire("openai")
    body = orjson.dumps(wire.completion(REPLY, {"messages": []}, "gpt-4o-mini"))
    request_json = {"messages": [], "stream": True, "stream_options": {"include_usage": True}}
    frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in wire.chunks(REPLY, request_json, "gpt-4o-mini")]
    frames.append(b"data: [DONE]\n\n")

    def stream_once() -> None:
        decoder = SSEDecoder()
        translator = StreamTranslator(provider="openai")
        for frame in frames:
            for event in decoder.feed(frame):
                if event.data == "[DONE]":
                    translator.finish()
                else:
                    translator.feed(orjson.loads(event.data))

    build = per_call_us(lambda: orjson.dumps(build_request(REQUEST, quirks, stream=True)), TRANSLATE_ROUNDS)
    parse = per_call_us(lambda: parse_response(orjson.loads(body)), TRANSLATE_ROUNDS)
    stream = per_call_us(stream_once, TRANSLATE_ROUNDS // 10)
    print("translation (µs, mean)")
    print(f"  build + serialise request (11 messages, 1 tool): {build:8.1f}")
    print(f"  parse completion body ({len(body)} B):             {parse:8.1f}")
    print(f"  per stream chunk (SSE + JSON + events, {len(frames)} chunks): {stream / len(frames):8.2f}")


def _serve(port: int) -> None:
    uvicorn.run(
        OpenAIEmulator("openai", fast=True, default=REPLY),
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
    )


async def _wait_up(url: str) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(url + "/v1/models")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("emulator did not start")


async def cell(backend: Backend, url: str, concurrency: int, streaming: bool) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms) for one configuration."""
    endpoint = Endpoint(PRESETS[ProviderId.OPENAI_COMPATIBLE], url + "/v1", NoCredential())
    latencies: list[float] = []
    deadline = time.perf_counter() + CELL_SECONDS
    async with UpstreamClients(backend=backend) as clients:
        adapter = OpenAIChatAdapter(clients, Timeouts(first_byte=10))

        async def one() -> None:
            if streaming:
                async for _ in adapter.stream(REQUEST, endpoint):
                    pass
            else:
                await adapter.complete(REQUEST, endpoint)

        for _ in range(concurrency):  # warm the pool
            await one()

        async def worker() -> None:
            while time.perf_counter() < deadline and len(latencies) < CELL_REQUESTS:
                started = time.perf_counter()
                await one()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1e3, p99 * 1e3


async def throughput(url: str) -> None:
    await _wait_up(url)
    print("\nupstream throughput via OpenAIChatAdapter (emulator in its own process)")
    print(f"  {'backend':8} {'mode':8} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for streaming in (False, True):
        for concurrency in (1, 50):
            for backend in ("httpx", "aiohttp", "h1"):
                rps, p50, p99 = await cell(backend, url, concurrency, streaming)
                mode = "stream" if streaming else "complete"
                print(f"  {backend:8} {mode:8} {concurrency:4d} {rps:8.0f} {p50:8.2f} {p99:8.2f}")


def main() -> None:
    translation()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        asyncio.run(throughput(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
