"""In process: the CPU an org's first request spends on its API key and its org, against a warm one.

Seeds `--orgs` orgs as `bench/tenants.py` does (three vault-sealed connections and one API key
each), builds the services a worker builds, then for `--sample` orgs one at a time times what the
request path does before routing: the key cache's `check` and the registry's `get` of the key's
org, first cold, then warm. It reports, per org, the main thread's CPU (`time.thread_time`), the
whole process's (`time.process_time`: aiosqlite's thread too) and the wall time, as medians of
`--rounds` rounds (each a fresh set of services, so every sample org is cold again), on uvloop as a
worker runs. `--profile FILE` writes a cProfile of the cold phases.

    .venv/bin/python bench/cold_org.py [--orgs 2000] [--sample 200] [--rounds 3] [--profile FILE]

`BENCH_DATABASE_URL` points at another (empty) database than the temporary SQLite file.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import gateway as g  # the benchmark next to this file: its settings
import tenants  # its seeding


async def one_round(settings: Any, keys: list[str], profile: cProfile.Profile | None) -> dict[str, float]:
    """Each key's `check` and its org's `get`, cold then warm: medians per org in ms."""
    from server.accounts import Principal
    from server.services import Services

    svc = Services.build(settings)
    gateway = svc.gateway
    assert gateway is not None
    figures: dict[str, list[float]] = {}
    try:
        await svc.db.ping()  # the pool's first connection is no org's cost
        for phase in ("cold", "warm"):
            thread, process, wall = [], [], []
            for key in keys:
                t0, p0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
                if profile is not None and phase == "cold":
                    profile.enable()
                principal = await gateway.api_keys.check(key)
                assert isinstance(principal, Principal)
                await gateway.registry.get(principal.org_id)
                if profile is not None and phase == "cold":
                    profile.disable()
                wall.append(time.perf_counter() - w0)
                thread.append(time.thread_time() - t0)
                process.append(time.process_time() - p0)
            figures[f"{phase}_thread"] = thread
            figures[f"{phase}_process"] = process
            figures[f"{phase}_wall"] = wall
    finally:
        await svc.aclose()
    return {name: statistics.median(values) * 1000 for name, values in figures.items()}


async def run(args: argparse.Namespace, data_dir: str) -> None:
    settings = g.bench_settings(data_dir, log_level="WARNING")
    keys = await tenants.seed(settings, "http://127.0.0.1:9/v1", args.orgs)
    rng = random.Random(7)
    profile = cProfile.Profile() if args.profile else None
    rounds = []
    for _ in range(args.rounds):
        rounds.append(await one_round(settings, rng.sample(keys, args.sample), profile))
    if profile is not None:
        profile.dump_stats(args.profile)
    load = os.getloadavg()[0]
    print(f"{args.orgs} orgs, {args.sample} a round, {args.rounds} rounds; load {load:.2f}")
    print(f"{'per org, ms':<22}{'cold':>8}{'warm':>8}{'cold-warm':>11}   (each round's median)")
    for what in ("thread", "process", "wall"):
        cold = statistics.median(r[f"cold_{what}"] for r in rounds)
        warm = statistics.median(r[f"warm_{what}"] for r in rounds)
        each = ", ".join(f"{r[f'cold_{what}'] - r[f'warm_{what}']:.2f}" for r in rounds)
        print(f"{what:<22}{cold:>8.3f}{warm:>8.3f}{cold - warm:>11.3f}   ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args, tmp))


if __name__ == "__main__":
    main()
