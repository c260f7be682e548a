"""Many tenants through one replica: what an org's first request costs, and what the caches hold.

Seeds `--orgs` orgs (default 10,000), each with three connections (vault-sealed keys) to the
OpenAI emulator, a chat route and one API key. One org is made through the services (as the
admin API makes it); the others are copies of its rows with fresh ids, keys and envelopes,
written with bulk inserts (`executemany`, 1,000 rows a statement): seeding 10,000 orgs takes
seconds, not one CLI call per org. Then it starts Patchbay (one uvicorn worker, as
`bench/gateway.py` does) and measures, through it:

- start-up: from spawning the process to its first served request;
- cold and warm: latency of `--sample` orgs' first request (one at a time), then of their
  second, beside the emulator's own latency (added = through minus direct), and the worker's
  CPU time per request in each (from /proc: cold minus warm is what loading an org and its
  key costs, whatever else the machine runs);
- warming c=50: every other org's first request, in random order, 50 at a time;
- warm c=50: random orgs for `--seconds` once every org is held;
- resident memory (VmRSS) of the worker with one org held and with all of them, per org;
- reload: a platform change (its config version bumped in the database, as the CLI does)
  drops every held org at the next config poll; then every org once more at c=50;
- the org and API-key caches' hits and misses, from /metrics.

    .venv/bin/python bench/tenants.py [--orgs 10000] [--sample 300] [--seconds 8] [--json]

`BENCH_DATABASE_URL` points at another (empty) database than the temporary SQLite file.
`--org-cache-size` sets `PATCHBAY_ORG_CACHE_SIZE` for the served process (default: the setting's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gateway as g  # the benchmark next to this file: its processes and settings

_BATCH = 1000
_CONNECTIONS = ("main", "second", "third")
_TOKEN = "bench-operator-token-0123456789abcdef"


async def seed(settings: Any, upstream: str, orgs: int) -> list[str]:
    """Create `orgs` orgs; returns one API key per org."""
    from sqlalchemy import insert, select

    from foundation.db import new_id
    from foundation.orgs import Org
    from providers.vault.crypto import Binding, seal
    from providers.vault.secret import Secret
    from providers.vault.tables import VaultSecret
    from routing.config_versions import ConfigVersion
    from routing.connections import KEY_FIELD
    from routing.tables import Connection, OrgAISettings
    from server import accounts
    from server.services import Services
    from server.tables import ApiKey

    svc = Services.build(settings)
    try:
        await svc.db.upgrade()
        async with svc.db.session() as s:
            first = await accounts.create_org(s, "tenant-0")
            for name in _CONNECTIONS:
                await svc.connections().create(
                    s, first.id, provider="openai", name=name, base_url=upstream, key=Secret(g.UPSTREAM_KEY)
                )
            await svc.agents().set_org_routing(s, first.id, chains={"chat": ["openai/gpt-4o-mini"]})
            keys = [(await accounts.create_api_key(s, first.id, name="bench")).key]
        async with svc.db.session() as s:
            template = {
                model: [_columns(row) for row in await s.scalars(select(model).where(column == first.id))]
                for model, column in (
                    (Org, Org.id),
                    (VaultSecret, VaultSecret.org_id),
                    (Connection, Connection.org_id),
                    (OrgAISettings, OrgAISettings.org_id),
                    (ApiKey, ApiKey.org_id),
                    (ConfigVersion, ConfigVersion.org_id),
                )
            }
        master = svc.vault.keys.current()
        sealed = Secret(g.UPSTREAM_KEY).expose().encode()
        for start in range(1, orgs, _BATCH):
            rows: dict[Any, list[dict[str, Any]]] = {model: [] for model in template}
            for i in range(start, min(orgs, start + _BATCH)):
                org_id = new_id("org")
                secret_ids = {r["id"]: new_id("sec") for r in template[VaultSecret]}
                conn_ids = {r["id"]: new_id("conn") for r in template[Connection]}
                rows[Org] += [r | {"id": org_id, "name": f"tenant-{i}"} for r in template[Org]]
                for r in template[VaultSecret]:
                    envelope = seal(sealed, Binding(org_id, conn_ids[r["owner_id"]], KEY_FIELD), master)
                    rows[VaultSecret].append(
                        r
                        | {
                            "id": secret_ids[r["id"]],
                            "org_id": org_id,
                            "owner_id": conn_ids[r["owner_id"]],
                            "ciphertext": envelope.ciphertext,
                            "nonce": envelope.nonce,
                            "wrapped_key": envelope.wrapped_key,
                            "wrap_nonce": envelope.wrap_nonce,
                            "key_version": envelope.key_version,
                        }
                    )
                rows[Connection] += [
                    r | {"id": conn_ids[r["id"]], "org_id": org_id, "secret_id": secret_ids[r["secret_id"]]}
                    for r in template[Connection]
                ]
                rows[OrgAISettings] += [r | {"org_id": org_id} for r in template[OrgAISettings]]
                rows[ConfigVersion] += [r | {"org_id": org_id} for r in template[ConfigVersion]]
                for r in template[ApiKey]:
                    key = accounts.API_KEY_PREFIX + secrets.token_urlsafe(32)
                    keys.append(key)
                    rows[ApiKey].append(
                        r
                        | {
                            "id": new_id("key"),
                            "org_id": org_id,
                            "prefix": accounts.key_prefix(key),
                            "key_hash": accounts.hash_api_key(key),
                        }
                    )
            async with svc.db.session() as s:
                for model, batch in rows.items():  # parents first: the template's order
                    if batch:
                        await s.execute(insert(model), batch)
    finally:
        await svc.aclose()
    return keys


def _columns(row: Any) -> dict[str, Any]:
    from sqlalchemy import inspect

    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}


async def bump_platform(settings: Any) -> None:
    """A platform change as any writer makes it: the platform scope's config version moves."""
    from routing.config_versions import bump
    from routing.platform import PLATFORM_SCOPE
    from server.services import Services

    svc = Services.build(settings)
    try:
        async with svc.db.session() as s:
            await bump(s, PLATFORM_SCOPE)
    finally:
        await svc.aclose()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def sweep(
    url: str, keys: list[str], concurrency: int, seconds: float | None = None, model: str = "default"
) -> dict[str, float]:
    """Each key once (or random keys for `seconds`), `concurrency` at a time."""
    import aiohttp

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say the numbers."}]})
    latencies: list[float] = []
    errors = 0
    pending = list(keys)
    deadline = time.perf_counter() + seconds if seconds is not None else None
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while True:
                if deadline is None:
                    if not pending:
                        return
                    key = pending.pop()
                elif time.perf_counter() < deadline:
                    key = random.choice(keys)
                else:
                    return
                headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


async def cache_counts(base: str) -> dict[str, float]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/metrics", headers={"authorization": f"Bearer {_TOKEN}"}) as response,
    ):
        text = await response.text()
    out: dict[str, float] = {}
    for name, cache, value in re.findall(r'^patchbay_cache_(\w+)_total\{cache="(\w+)"\} (\S+)$', text, re.M):
        out[f"{cache}_{name}"] = float(value)
    return out


async def measure(
    base: str, direct_url: str, keys: list[str], args: argparse.Namespace, pid: int, settings: Any
) -> dict[str, Any]:
    url = f"{base}/v1/chat/completions"
    rng = random.Random(7)
    order = keys[:]
    rng.shuffle(order)
    probe, sample, rest = order[0], order[1 : 1 + args.sample], order[1 + args.sample :]
    out: dict[str, Any] = {
        "orgs": len(keys),
        "database": "postgresql" if os.environ.get("BENCH_DATABASE_URL") else "sqlite",
    }
    await sweep(url, [probe] * 50, 1)  # one org held: the baseline
    await sweep(direct_url, [g.UPSTREAM_KEY] * 200, 1, model="gpt-4o-mini")
    rss_one = rss_kib(pid)
    direct = await sweep(direct_url, [g.UPSTREAM_KEY] * len(sample), 1, model="gpt-4o-mini")
    began = cpu_seconds(pid)
    cold = await sweep(url, sample, 1)
    between = cpu_seconds(pid)
    warm = await sweep(url, sample, 1)
    cold["cpu_ms"] = (between - began) * 1000 / max(1, len(sample))
    warm["cpu_ms"] = (cpu_seconds(pid) - between) * 1000 / max(1, len(sample))
    out["direct_c1"], out["cold_c1"], out["warm_c1"] = direct, cold, warm
    out["warming_c50"] = await sweep(url, rest, 50)
    out["warm_c50"] = await sweep(url, keys, 50, seconds=args.seconds)
    rss_all = rss_kib(pid)
    out["rss_one_org_mib"] = rss_one / 1024
    out["rss_all_orgs_mib"] = rss_all / 1024
    out["rss_per_org_kib"] = (rss_all - rss_one) / max(1, len(keys) - 1)
    out["caches"] = await cache_counts(base)
    await bump_platform(settings)
    await asyncio.sleep(3.0)  # the config poll runs every 2 s
    out["reload_c50"] = await sweep(url, order, 50)
    return out


def report(figures: dict[str, Any]) -> None:
    direct = figures["direct_c1"]["p50_ms"]
    print(f"{figures['orgs']} orgs on {figures['database']}; start-up {figures['startup_s']:.2f} s")
    print(f"{'phase':<14}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'errors':>8}")
    for phase in ("direct_c1", "cold_c1", "warm_c1", "warming_c50", "warm_c50", "reload_c50"):
        cell = figures[phase]
        added = cell["p50_ms"] - direct if phase.endswith("c1") and phase != "direct_c1" else float("nan")
        print(
            f"{phase:<14}{cell['requests']:>9}{cell['rate']:>9.0f}{cell['p50_ms']:>9.2f}{cell['p99_ms']:>9.2f}"
            f"{added:>11.2f}{cell['errors']:>8}"
        )
    cold, warm = figures["cold_c1"], figures["warm_c1"]
    print(
        f"cold - warm p50: {cold['p50_ms'] - warm['p50_ms']:.2f} ms; worker CPU per request cold "
        f"{cold['cpu_ms']:.2f} ms, warm {warm['cpu_ms']:.2f} ms (an org's load: {cold['cpu_ms'] - warm['cpu_ms']:.2f} ms)"
    )
    print(
        f"RSS {figures['rss_one_org_mib']:.0f} MiB with one org, {figures['rss_all_orgs_mib']:.0f} MiB with all "
        f"({figures['rss_per_org_kib']:.1f} KiB per org); reload of every org at c=50: "
        f"{figures['reload_c50']['seconds']:.2f} s"
    )
    print("caches:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(figures["caches"].items())))


def serve(port: int, data_dir: str, cache_size: int | None) -> None:
    from server.logs import configure_logging

    overrides: dict[str, object] = {
        "admin_token": _TOKEN,
        "log_level": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    if cache_size is not None:
        overrides["org_cache_size"] = cache_size
    settings = g.bench_settings(data_dir, **overrides)
    configure_logging(settings.log_level)
    g.serve_app(settings, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "patchbay"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument(
        "--sample", type=int, default=300, help="Orgs whose cold and warm requests are timed one at a time."
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--org-cache-size", type=int)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON instead of a table.")
    args = parser.parse_args()
    if args.role == "patchbay":
        serve(args.port, args.data_dir, args.org_cache_size)
        return

    env = {**os.environ, "PYTHONPATH": str(g.ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        emu_port, pb_port = g.free_port(), g.free_port()
        emulator = subprocess.Popen(
            [sys.executable, str(g.ROOT / "bench/gateway.py"), "emulator", "--port", str(emu_port)], env=env
        )
        procs = [emulator]
        try:
            g.wait_port(emu_port)
            settings = g.bench_settings(tmp)
            began = time.perf_counter()
            keys = asyncio.run(seed(settings, f"http://127.0.0.1:{emu_port}/v1", args.orgs))
            seeded = time.perf_counter() - began
            command = [sys.executable, __file__, "patchbay", "--port", str(pb_port), "--data-dir", tmp]
            if args.org_cache_size is not None:
                command += ["--org-cache-size", str(args.org_cache_size)]
            began = time.perf_counter()
            patchbay = subprocess.Popen(command, env=env)
            procs.append(patchbay)
            g.wait_port(pb_port, timeout=120)
            if patchbay.poll() is not None:
                raise RuntimeError("patchbay did not start")
            base = f"http://127.0.0.1:{pb_port}"
            asyncio.run(sweep(f"{base}/v1/chat/completions", keys[:1], 1))
            startup = time.perf_counter() - began
            direct = f"http://127.0.0.1:{emu_port}/v1/chat/completions"
            figures = asyncio.run(measure(base, direct, keys, args, patchbay.pid, settings))
            figures["startup_s"], figures["seed_s"] = startup, seeded
            figures["cpus"], figures["load"] = os.cpu_count(), os.getloadavg()[0]
            if args.json:
                print(json.dumps(figures, indent=2))
            else:
                print(f"seeded in {seeded:.1f} s; {figures['cpus']} CPUs, load {figures['load']:.2f}")
                report(figures)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


if __name__ == "__main__":
    main()
