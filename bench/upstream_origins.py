"""What a worker pays for each upstream origin it calls: memory and CPU of a new origin's client.

Every org's private endpoint is an origin of its own (scheme, host, port), so a worker that
serves many orgs makes many. The benchmark makes `--origins` clients through the gateway's own
factory (the guarded aiohttp session, no network), after one warm-up origin, and reports the
process's resident memory and CPU per new origin. It then moves a fake clock past
`IDLE_ORIGIN_SECONDS` and makes one more origin: the idle ones are closed, and what stays is
printed.

    .venv/bin/python bench/upstream_origins.py [--origins 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def resident_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure(origins: int) -> None:
    from providers.upstream_pool import IDLE_ORIGIN_SECONDS, SWEEP_SECONDS, UpstreamClients
    from routing.guard import GuardPolicy
    from server.v1.gateway import guarded_session

    now = [0.0]
    guard = GuardPolicy()
    pool = UpstreamClients(session_factory=lambda: guarded_session(guard), clock=lambda: now[0])
    pool.client_for("https://warm-up.example.com/v1")
    gc.collect()
    rss, cpu = resident_kib(), time.process_time()
    for n in range(origins):
        pool.client_for(f"https://endpoint-{n}.example.com/v1")
    cpu, rss = time.process_time() - cpu, resident_kib() - rss
    print(
        f"{origins:,} new origins: {rss / origins:.1f} KiB resident and {cpu / origins * 1e3:.3f} ms CPU each"
    )
    now[0] += IDLE_ORIGIN_SECONDS + SWEEP_SECONDS
    pool.client_for("https://one-more.example.com/v1")
    await asyncio.gather(*pool._closing)
    print(f"after {IDLE_ORIGIN_SECONDS:.0f} s idle and one more origin: {len(pool.origins)} client(s) kept")
    await pool.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", type=int, default=1000)
    asyncio.run(measure(parser.parse_args().origins))


if __name__ == "__main__":
    main()
