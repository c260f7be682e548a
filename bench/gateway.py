"""What Patchbay's routed /v1/chat/completions adds on top of the upstream, measured in one run.

Three processes on loopback: the OpenAI emulator (`fast=True`: zero delay, one write per
response; a stream carries 20 `data:` frames), Patchbay (uvicorn, one worker, uvloop +
httptools, SQLite, production logging at INFO) routing to it, and this load generator
(aiohttp). For each mode (non-streaming, streaming) and concurrency (1 and 50) it measures the
emulator directly, then through Patchbay by each route, and prints latency p50/p99, time to
first body byte for streams, and requests (or streams) per second. "Added" is through minus
direct.

Two routes reach the same emulator: `byok`, an org (enterprise) with its own connection (no
ledger access), and `platform`, an org without one, served by a priced platform connection and
billed against credits granted at seeding: a draw on the process's credit lease before the call
and a journaled settle after it, written into the ledger behind (billing/lease.py).

    .venv/bin/python bench/gateway.py [--requests 2000] [--seconds 8] [--routes byok,platform]

`BENCH_DATABASE_URL` points Patchbay at another (empty) database than the temporary SQLite file;
`BENCH_REDIS_URL` and `BENCH_RATE_LIMIT` add Redis and the per-key rate limit (see `bench_settings`).
`BENCH_CHUNK_GAP_MS` (e.g. 2) makes the emulator write a stream's frames that far apart, each in
its own read on the other side, as a model's stream arrives; streams then last 20 gaps longer,
so their latency columns mean less and their CPU per stream more.
`BENCH_TURNS` (e.g. 50) makes each request carry a conversation of that many turns, as a chat
client resends its history every turn, instead of one user message.
`--tracing RATIO` turns tracing on (`PATCHBAY_OTEL_ENDPOINT`, `PATCHBAY_OTEL_SAMPLE_RATIO`): a
fourth process on loopback, an OTLP/HTTP collector that counts the spans it receives, and
Patchbay exporting that fraction of its traces to it (`BENCH_OTEL_ENDPOINT` and
`BENCH_OTEL_SAMPLE_RATIO` do the same for another collector, and for bench/gateway_cpu.py).

Each cell stops after `--requests` requests or `--seconds` seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# 17 words: a role frame, 17 content frames, the finish frame and the usage frame = 20 frames.
TEXT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
UPSTREAM_KEY = "sk-bench-upstream-key"
MASTER_KEY = "v1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_emulator(port: int) -> None:
    import uvicorn

    from tests.emulators.openai import OpenAIEmulator, Scenario

    # BENCH_CHUNK_GAP_MS spaces a stream's frames as a model's are, so each arrives in its own
    # read; by default the whole stream is one write (complete bodies are one write either way).
    gap = float(os.environ.get("BENCH_CHUNK_GAP_MS") or 0) / 1000
    spaced = Scenario(text=TEXT, chunk_delay=gap)
    app = OpenAIEmulator(
        "openai",
        api_key=UPSTREAM_KEY,
        fast=True,
        default=Scenario(text=TEXT),
        responder=(lambda request: spaced if request.get("stream") else None) if gap else None,
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def bench_settings(data_dir: str, **overrides: object) -> Settings:
    """The settings every bench serves Patchbay with: loopback upstreams allowed, no rate limit,
    `BENCH_DATABASE_URL` (e.g. an empty PostgreSQL database) instead of SQLite when set.

    The production configuration (docs/operations.md, Scaling out) adds `BENCH_REDIS_URL` (the
    shared cooldowns, rate limits and config notices) and `BENCH_RATE_LIMIT` (the per-key rate
    limit, e.g. `1000000/60`: on, as deployed, and never reached by the bench)."""
    from server.settings import Settings

    fields: dict[str, object] = {
        "data_dir": Path(data_dir),
        "database_url": os.environ.get("BENCH_DATABASE_URL") or None,
        "allow_private_base_urls": True,
        "allow_plain_http_base_urls": True,
        "master_key": MASTER_KEY,
        "log_level": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "api_key_rate_limit": os.environ.get("BENCH_RATE_LIMIT", "off"),
        "redis_url": os.environ.get("BENCH_REDIS_URL") or None,
        "otel_endpoint": os.environ.get("BENCH_OTEL_ENDPOINT") or None,
        "otel_sample_ratio": float(os.environ.get("BENCH_OTEL_SAMPLE_RATIO") or 1),
    }
    return Settings(**(fields | overrides))


def serve_collector(port: int) -> None:
    """An OTLP/HTTP collector that keeps no span, only their count (`GET /spans`)."""
    import uvicorn

    from tests.emulators.otlp import OtlpCollector

    collector = OtlpCollector(keep=False)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "GET" and scope["path"] == "/spans":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(collector.span_count).encode()})
            return
        await collector(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)


def serve_app(settings: Settings, port: int) -> None:
    """Patchbay as `patchbay serve` runs one worker: uvicorn, uvloop, httptools."""
    import uvicorn

    from server.app import create_app
    from server.services import Services

    app = create_app(settings, services=Services.build(settings), freeze_gc=True)  # as `patchbay serve`
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None, access_log=False
    )


def serve_patchbay(port: int, upstream: str, data_dir: str, key_file: str) -> None:
    from providers.vault.secret import Secret
    from server import accounts
    from server.logs import configure_logging
    from server.services import Services

    settings = bench_settings(data_dir)
    configure_logging(settings.log_level)

    from billing.prices import parse_price_spec

    async def seed() -> dict[str, str]:
        svc = Services.build(settings)
        try:
            await svc.db.upgrade()
            async with svc.db.session() as s:
                org = await accounts.create_org(s, "bench")
                await svc.connections().create(
                    s, org.id, provider="openai", name="main", base_url=upstream, key=Secret(UPSTREAM_KEY)
                )
                await svc.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
                byok = await accounts.create_api_key(s, org.id, name="bench")
                # The platform route: the operator's priced connection, an org without its own.
                await svc.connections().create(
                    s,
                    None,
                    provider="openai",
                    base_url=upstream,
                    key=Secret(UPSTREAM_KEY),
                    models=["gpt-4o-mini"],
                    prices={"gpt-4o-mini": parse_price_spec("0.15/0.60")},
                )
                paying = await accounts.create_org(s, "bench-platform")
                await svc.agents().set_org_routing(s, paying.id, chains={"chat": ["openai/gpt-4o-mini"]})
                platform = await accounts.create_api_key(s, paying.id, name="bench")
            await svc.ledger.grant(paying.id, 10**12, "bench-grant")  # $1M: never runs out
        finally:
            await svc.aclose()
        return {"byok": byok.key, "platform": platform.key}

    Path(key_file).write_text(json.dumps(asyncio.run(seed())))
    serve_app(settings, port)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    key: str
    model: str


@dataclass
class Cell:
    latencies: list[float]
    first_bytes: list[float]
    elapsed: float = 0.0
    errors: int = 0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


def conversation(turns: int | None = None) -> list[dict[str, str]]:
    """`turns` messages (default `BENCH_TURNS`, else 1), user and assistant by turns, the last one
    the user's question."""
    if turns is None:
        turns = int(os.environ.get("BENCH_TURNS", "1"))
    earlier = [
        {
            "role": "user" if (turns - i) % 2 == 0 else "assistant",
            "content": f"Turn {i}: some conversational text that is about as long as a spoken sentence.",
        }
        for i in range(1, turns)
    ]
    return [*earlier, {"role": "user", "content": "Say the numbers."}]


async def run_cell(
    targets: list[Target], *, stream: bool, concurrency: int, requests: int, seconds: float
) -> dict[str, Cell]:
    """Each worker sends one request to every target in turn, so with several targets the
    measurements are paired: the same machine noise lands on both sides of the difference."""
    import aiohttp
    import orjson

    bodies = {
        t.name: orjson.dumps(
            {
                "model": t.model,
                "messages": conversation(),
                "stream": stream,
            }
        )
        for t in targets
    }
    cells = {t.name: Cell([], []) for t in targets}
    issued = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency * len(targets), force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(target: Target) -> None:
            cell = cells[target.name]
            headers = {"authorization": f"Bearer {target.key}", "content-type": "application/json"}
            started = time.perf_counter()
            first = None
            async with session.post(target.url, data=bodies[target.name], headers=headers) as response:
                async for _chunk in response.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                ok = response.status == 200
            done = time.perf_counter()
            if not ok:
                cell.errors += 1
                return
            cell.latencies.append(done - started)
            cell.first_bytes.append((first or done) - started)

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                for target in targets:
                    await one(target)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    for cell in cells.values():
        cell.elapsed = elapsed
    return cells


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), for the gateway's CPU cost per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


async def measure(direct: Target, routes: list[Target], requests: int, seconds: float, pid: int) -> None:
    print(
        f"{'mode':<9}{'conc':>5} {'target':<9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'ttfb p50':>10}{'ttfb p99':>10}{'errors':>8}{'cpu ms/req':>12}"
    )
    summary: list[str] = []
    for stream in (False, True):
        mode = "stream" if stream else "complete"
        for concurrency in (1, 50):
            # Concurrency 1 is paired (direct and each route alternate); at 50 each target runs
            # alone, since throughput is the point there.
            groups = [[direct, *routes]] if concurrency == 1 else [[direct]] + [[r] for r in routes]
            cells: dict[str, Cell] = {}
            cpu: dict[str, float] = {}
            for group in groups:
                await run_cell(
                    group, stream=stream, concurrency=concurrency, requests=200, seconds=2
                )  # warm-up
                cpu_before = cpu_seconds(pid)
                measured = await run_cell(
                    group, stream=stream, concurrency=concurrency, requests=requests, seconds=seconds
                )
                cells |= measured
                served = sum(len(measured[r.name].latencies) for r in routes if r in group)
                if served:  # paired routes share the process: its CPU per request over all of them
                    for route in (r for r in routes if r in group):
                        cpu[route.name] = (cpu_seconds(pid) - cpu_before) * 1000 / served
            for name, cell in cells.items():
                rate = "paired" if concurrency == 1 else f"{cell.rate:.0f}"
                print(
                    f"{mode:<9}{concurrency:>5} {name:<9}{rate:>8}{cell.pct(cell.latencies, 0.5):>9.2f}"
                    f"{cell.pct(cell.latencies, 0.99):>9.2f}{cell.pct(cell.first_bytes, 0.5):>10.2f}"
                    f"{cell.pct(cell.first_bytes, 0.99):>10.2f}{cell.errors:>8}"
                    + (f"{cpu[name]:>12.2f}" if name in cpu else "")
                )
            d = cells[direct.name]
            for route in routes:
                p = cells[route.name]
                line = (
                    f"{mode} c={concurrency} {route.name}: added p50 {p.pct(p.latencies, 0.5) - d.pct(d.latencies, 0.5):.2f} ms, "
                    f"p99 {p.pct(p.latencies, 0.99) - d.pct(d.latencies, 0.99):.2f} ms, added ttfb p50 "
                    f"{p.pct(p.first_bytes, 0.5) - d.pct(d.first_bytes, 0.5):.2f} ms"
                )
                if concurrency > 1:
                    line += f"; {p.rate:.0f}/s through vs {d.rate:.0f}/s direct"
                summary.append(line)
    print()
    for line in summary:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "role", nargs="?", default="bench", choices=["bench", "emulator", "patchbay", "collector"]
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--upstream")
    parser.add_argument("--data-dir")
    parser.add_argument("--key-file")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--routes",
        default="byok,platform",
        help="Routes through Patchbay, comma-separated: byok (the org's own key) and platform (billed credits).",
    )
    parser.add_argument(
        "--tracing",
        type=float,
        metavar="RATIO",
        help="Trace this fraction of requests (0-1) into a span-counting OTLP collector on loopback.",
    )
    args = parser.parse_args()
    if args.tracing is not None and not 0 <= args.tracing <= 1:
        parser.error("--tracing takes a fraction from 0 to 1")
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not routes or set(routes) - {"byok", "platform"}:
        parser.error("--routes takes byok, platform or both")
    if args.role == "emulator":
        serve_emulator(args.port)
        return
    if args.role == "patchbay":
        serve_patchbay(args.port, args.upstream, args.data_dir, args.key_file)
        return
    if args.role == "collector":
        serve_collector(args.port)
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    collector: subprocess.Popen[bytes] | None = None
    if args.tracing is not None:
        otel_port = free_port()
        collector = subprocess.Popen(
            [sys.executable, __file__, "collector", "--port", str(otel_port)], env=env
        )
        wait_port(otel_port)
        env |= {
            "BENCH_OTEL_ENDPOINT": f"http://127.0.0.1:{otel_port}",
            "BENCH_OTEL_SAMPLE_RATIO": str(args.tracing),
        }
    with tempfile.TemporaryDirectory() as tmp:
        emu_port, pb_port = free_port(), free_port()
        key_file = Path(tmp) / "key"
        log = open(Path(tmp) / "patchbay.log", "wb")  # noqa: SIM115 - closed below
        procs = [
            subprocess.Popen([sys.executable, __file__, "emulator", "--port", str(emu_port)], env=env),
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "patchbay",
                    "--port",
                    str(pb_port),
                    "--upstream",
                    f"http://127.0.0.1:{emu_port}/v1",
                    "--data-dir",
                    tmp,
                    "--key-file",
                    str(key_file),
                ],
                env=env,
                stderr=log,
            ),
        ]
        try:
            wait_port(emu_port)
            wait_port(pb_port)
            print(
                f"emulator :{emu_port}, patchbay :{pb_port}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
            )
            direct = Target(
                "direct", f"http://127.0.0.1:{emu_port}/v1/chat/completions", UPSTREAM_KEY, "gpt-4o-mini"
            )
            keys = json.loads(key_file.read_text())
            through = [
                Target(route, f"http://127.0.0.1:{pb_port}/v1/chat/completions", keys[route], "default")
                for route in routes
            ]
            asyncio.run(measure(direct, through, args.requests, args.seconds, procs[1].pid))
            if collector is not None:
                with urllib.request.urlopen(f"{env['BENCH_OTEL_ENDPOINT']}/spans", timeout=5) as counted:
                    spans = int(counted.read())
                print(f"tracing at ratio {args.tracing:g}: the collector received {spans} spans so far")
        finally:
            started = [*procs, *([collector] if collector else [])]
            for p in started:
                p.terminate()
            for p in started:
                p.wait(10)
            log.close()


if __name__ == "__main__":
    main()
