"""A cluster for replica tests: PostgreSQL, Redis, two `patchbay serve` replicas and Debian's nginx
in front, on loopback, with the provider emulators in this process (tests/server/test_replicas_nginx.py).

`cluster_running` starts it once for a test module: a fresh migrated PostgreSQL database, the
shared Redis (every key it writes is named by an org, profile or key id of that fresh database),
two replicas (`tests/replicas.py`, `PATCHBAY_REPLICAS=2`) and nginx with
deploy/nginx/patchbay.conf (`tests/nginx_front.py`). The helpers make an org with its own
connections, chain and API key through the admin API, and read route traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import databases
from tests.conftest import REDIS_URL, _require_service
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai_errors import rate_limited
from tests.emulators.valve import Valve
from tests.nginx_front import nginx_running
from tests.replicas import Replica, replica_env, replica_processes
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import MISTRAL_KEY, OPENAI_KEY

OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "default", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
PLATFORM_MODEL = "gpt-4.1"
"""Only a platform connection serves it, so one changes no other org's route."""


@dataclass
class Cluster:
    replicas: list[Replica]
    nginx: str
    nginx_log: Path
    """nginx's error log, what an operator reads when a replica fails."""
    db_url: str
    openai: OpenAIEmulator
    openai_url: str
    mistral_url: str
    limited: OpenAIEmulator
    """Answers every chat request 429 with a 10-minute retry-after."""
    limited_url: str
    valve: Valve
    """In front of an emulator of its own: streams that start, then wait for the test."""
    valve_url: str


@contextlib.contextmanager
def _database() -> Iterator[str]:
    """A fresh migrated PostgreSQL database the replicas share (outside any test's event loop)."""
    _require_service("PostgreSQL", *databases.pg_host_port())
    name = asyncio.run(databases.postgres.migrated())
    try:
        yield databases.pg_url(name)
    finally:
        databases.postgres.drop(name)


@contextlib.contextmanager
def cluster_running(tmp: Path, **settings: str) -> Iterator[Cluster]:
    """The emulators, the database, two replicas (with `settings` on top of `replica_env`'s) and
    nginx, all stopped at the end."""
    _require_service("Redis", "127.0.0.1", 6379)
    openai = OpenAIEmulator("openai", api_key=OPENAI_KEY, models=("gpt-4o-mini", PLATFORM_MODEL))
    mistral = OpenAIEmulator("mistral", api_key=MISTRAL_KEY, models=("mistral-small-latest",))
    limited = OpenAIEmulator("openai", api_key=OPENAI_KEY, models=("gpt-4o-mini",))
    limited.always(rate_limited(600))
    valve = Valve(OpenAIEmulator("openai", api_key=OPENAI_KEY, models=("gpt-4o-mini",)))
    served: list[ServedApp] = []
    try:
        for app in (openai, mistral, limited, valve):
            served.append(ServedApp(app).start())
        urls = [s.url + "/v1" for s in served]
        with _database() as db_url:
            env = replica_env(db_url, REDIS_URL, PATCHBAY_FORWARDED_ALLOW_IPS="127.0.0.1", **settings)
            with (
                replica_processes(tmp, env, 2) as replicas,
                nginx_running(tmp, [r.port for r in replicas]) as nginx,
            ):
                yield Cluster(
                    replicas=replicas,
                    nginx=nginx,
                    nginx_log=tmp / "nginx" / "error.log",
                    db_url=db_url,
                    openai=openai,
                    openai_url=urls[0],
                    mistral_url=urls[1],
                    limited=limited,
                    limited_url=urls[2],
                    valve=valve,
                    valve_url=urls[3],
                )
    finally:
        for s in served:
            s.stop()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def admin_api(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{base}/admin/v1", headers=OPERATOR, timeout=10)


def api(base: str, key: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    return httpx.AsyncClient(
        base_url=base, headers={"authorization": f"Bearer {key}"}, limits=limits, timeout=30
    )


async def make_org(http: httpx.AsyncClient, connections: dict[str, str], chain: list[str]) -> tuple[str, str]:
    """An org with its own connections (provider -> base URL), a chat chain and an API key."""
    org = (await ok(await http.post("/orgs", json={"name": "org-" + secrets.token_hex(4)}), 201))["id"]
    for provider, base_url in connections.items():
        key = MISTRAL_KEY if provider == "mistral" else OPENAI_KEY
        body = {"provider": provider, "base_url": base_url, "key": key}
        await ok(await http.post(f"/orgs/{org}/connections", json=body), 201)
    if chain:
        await ok(await http.put(f"/orgs/{org}/routing", json={"chains": {"chat": chain}}))
    key = (await ok(await http.post(f"/orgs/{org}/api-keys", json={"name": "app"}), 201))["key"]
    return str(org), str(key)


async def route(http: httpx.AsyncClient) -> str:
    """One routed chat completion's route trace (`x-patchbay-route`)."""
    answer = await http.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 200, answer.text
    return str(answer.headers["x-patchbay-route"])
