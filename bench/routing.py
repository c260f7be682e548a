"""Resolver cost per request: 50 connections, 20-step chains, a third of the profiles cooling down.

Measures what the hot path does before the first upstream byte: choosing the chain, listing
the candidate profiles (for the one batched state read) and building the plan. The state
read itself is timed separately: against the in-process store, and against Redis when a
URL is given. Bounded: a fixed number of requests, a few seconds in all.
Run: `.venv/bin/python bench/routing.py [redis://127.0.0.1:6379/0]`.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.contract import (
    Capability,
    CredentialSource,
    ErrorClass,
    ModelRef,
    ProviderId,
    billing_source_for,
)
from routing.catalog import default_catalog
from routing.cooldown import Failure, ProfileState, apply_failure
from routing.cooldown_store import InProcessCooldownStore
from routing.intents import Intent
from routing.model import ConnectionStatus, ConnectionView, DeclaredModel, OrgRouting
from routing.resolver import Resolver, RouteRequest

REQUESTS = 5_000
REDIS_REQUESTS = 1_000
NOW = 1_000_000.0
PUBLIC = [
    p
    for p in ProviderId
    if p not in (ProviderId.OPENAI_COMPATIBLE, ProviderId.INTERNAL, ProviderId.ELEVENLABS)
]


def build_org(rng: random.Random) -> tuple[OrgRouting, dict[str, ProfileState]]:
    catalog = default_catalog()
    connections: list[ConnectionView] = []
    for provider in PUBLIC:  # 7 providers x 6 profiles = 42
        for i in range(6):
            source = CredentialSource.ORG_KEY
            connections.append(
                ConnectionView(
                    f"c_{provider}_{i}",
                    "org",
                    provider,
                    f"key{i}",
                    None,
                    ConnectionStatus.ACTIVE,
                    0,
                    source,
                    billing_source_for(source),
                )
            )
    for i in range(8):  # + 8 private endpoints = 50
        source = CredentialSource.ORG_PRIVATE_ENDPOINT
        connections.append(
            ConnectionView(
                f"c_lab{i}",
                "org",
                ProviderId.OPENAI_COMPATIBLE,
                f"lab{i}",
                f"https://lab{i}.example/v1",
                ConnectionStatus.ACTIVE,
                0,
                source,
                billing_source_for(source),
                (DeclaredModel("llama-3-70b", frozenset({Capability.TEXT, Capability.TOOLS})),),
            )
        )
    refs = [ModelRef(p.value, m) for p in PUBLIC for m in list(catalog.models[p])[:3]]
    refs += [ModelRef(f"lab{i}", "llama-3-70b") for i in range(8)]
    rng.shuffle(refs)
    chain = tuple(refs[:20])
    by_provider: dict[ProviderId, tuple[ConnectionView, ...]] = {}
    for c in connections:
        by_provider[c.provider] = (*by_provider.get(c.provider, ()), c)
    org = OrgRouting(
        org_id="org",
        tier="pro",
        default_model=None,
        allowlist=None,
        matrix={Intent.CHAT: chain, Intent.TOOLS: chain},
        agents={},
        profiles=by_provider,
        custom={c.name: c for c in by_provider[ProviderId.OPENAI_COMPATIBLE]},
    )
    states: dict[str, ProfileState] = {}
    for c in connections:
        state = ProfileState(last_used=NOW - rng.random() * 100)
        if rng.random() < 1 / 3:
            state = apply_failure(state, Failure(ErrorClass.RATE_LIMIT, "x", retry_after=60), NOW - 1)
        states[c.profile_id] = state
    return org, states


async def redis_read_us(url: str, ids: list[str]) -> float:
    """One MGET of every candidate profile against a real Redis, per request."""
    from redis.asyncio import Redis

    from routing.cooldown_store import RedisCooldownStore

    client = Redis.from_url(url)
    store = RedisCooldownStore(client, prefix="patchbay-bench:")
    try:
        for pid in ids:
            await store.record_success("org", pid, "x", NOW)
        start = time.perf_counter()
        for _ in range(REDIS_REQUESTS):
            await store.get_many("org", ids)
        return (time.perf_counter() - start) / REDIS_REQUESTS * 1e6
    finally:
        await client.delete(*[store.key("org", pid) for pid in ids])
        await client.aclose()


def measure() -> dict[str, float]:
    rng = random.Random(5)
    org, states = build_org(rng)
    resolver = Resolver(default_catalog())
    route = RouteRequest(intent=Intent.TOOLS, needs=frozenset({Capability.TOOLS}))
    samples = []
    candidates = 0
    for _ in range(REQUESTS):
        start = time.perf_counter()
        choice = resolver.select(org, route)
        ids = resolver.profiles_for(org, choice.chain)
        plan = resolver.plan(org, route, states, NOW, choice)
        samples.append(time.perf_counter() - start)
        candidates = len(plan.items)
    samples.sort()

    store = InProcessCooldownStore()

    async def reads() -> float:
        for pid in ids:
            await store.record_success("org", pid, "x", NOW)
        start = time.perf_counter()
        for _ in range(REQUESTS):
            await store.get_many("org", ids)
        return (time.perf_counter() - start) / REQUESTS

    read = asyncio.run(reads())
    redis_url = sys.argv[1] if len(sys.argv) > 1 else None
    redis_us = asyncio.run(redis_read_us(redis_url, ids)) if redis_url else float("nan")
    return {
        "connections": len(org.all_connections()),
        "chain_steps": len(org.matrix[Intent.TOOLS]),
        "candidates": candidates,
        "profiles_read": len(ids),
        "median_us": statistics.median(samples) * 1e6,
        "p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "state_read_us": read * 1e6,
        "redis_read_us": redis_us,
    }


def main() -> None:
    r = measure()
    print(
        f"routing resolver: {r['connections']:.0f} connections, {r['chain_steps']:.0f}-step chain, "
        f"{r['candidates']:.0f} candidates, {r['profiles_read']:.0f} profiles read"
    )
    print(
        f"  plan per request: median {r['median_us']:.1f} µs, p99 {r['p99_us']:.1f} µs ({REQUESTS} requests)"
    )
    print(f"  in-process state read (one batch): {r['state_read_us']:.1f} µs/request")
    if r["redis_read_us"] == r["redis_read_us"]:
        print(
            f"  Redis state read (one MGET): {r['redis_read_us']:.1f} µs/request ({REDIS_REQUESTS} requests)"
        )


if __name__ == "__main__":
    main()
