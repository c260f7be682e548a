"""Replicas for multi-process tests: a fresh migrated PostgreSQL database they share and real
`patchbay serve` processes on loopback ports (one worker each), started side by side."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.db import Database
from tests import databases
from tests.conftest import _require_service
from tests.emulators.harness import free_port
from tests.private_services import PrivateRedis, private_redis
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import TEST_MASTER_KEY

PATCHBAY = str(Path(sys.executable).with_name("patchbay"))


def replica_env(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment every replica shares: this process's, without its PATCHBAY_ settings, and
    the shared database, Redis, admin token, master key and voice token secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHBAY_")}
    env.update(
        PATCHBAY_DATABASE_URL=pg_url,
        PATCHBAY_REDIS_URL=redis_url,
        PATCHBAY_WORKERS="1",
        PATCHBAY_LOG_LEVEL="WARNING",
        PATCHBAY_ADMIN_TOKEN=ADMIN_TOKEN,
        PATCHBAY_MASTER_KEY=TEST_MASTER_KEY,
        PATCHBAY_VOICE_TOKEN_SECRET=secrets.token_urlsafe(32),
        PATCHBAY_ALLOW_PRIVATE_BASE_URLS="true",
        PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS="true",
        PATCHBAY_API_KEY_RATE_LIMIT="off",
    )
    env.update(extra)
    return env


@pytest.fixture
async def replica_db() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database (the replicas' shared store)."""
    _require_service("PostgreSQL", *databases.pg_host_port())
    name = await databases.postgres.migrated()
    try:
        yield databases.pg_url(name)
    finally:
        databases.postgres.drop(name)


@pytest.fixture
async def replica_database(replica_db: str) -> Database:
    """`replica_db` as a `Database`, for tests that seed what the replicas then serve."""
    return Database(replica_db)


@pytest.fixture
def private_redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of the test's own, which it may stop and kill (never the shared one)."""
    with private_redis(tmp_path) as redis:
        yield redis


@dataclass(eq=False)
class Replica:
    """One `patchbay serve` process of `replicas_running`: its base URL, and what starts it again."""

    n: int
    url: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self) -> None:
        """Start the process (on the same port and data directory when started again)."""
        with self.log.open("ab") as sink:  # a file, not a pipe: a full pipe would stall the server
            self.proc = subprocess.Popen(
                [PATCHBAY, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=sink
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def wait_ready(self, deadline: float) -> None:
        """Until /readyz answers 200 (a loaded CI machine imports slowly: `deadline` is generous)."""
        while True:
            assert self.alive(), self.log.read_text(errors="replace")[-4000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            assert time.monotonic() < deadline, (
                f"replica {self.n} did not get ready in time: {self.log.read_text(errors='replace')[-4000:]}"
            )
            time.sleep(0.1)  # polling for readiness, not standing in for it


@contextlib.contextmanager
def replica_processes(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[Replica]]:
    """`count` `patchbay serve` processes (one worker each, `PATCHBAY_REPLICAS=count`), each on its
    own port, started side by side; yielded once each /readyz answers 200, killed at the end."""
    started: list[Replica] = []
    try:
        for n in range(count):
            port = free_port()
            own = {
                **env,
                "PATCHBAY_REPLICAS": str(count),
                "PATCHBAY_DATA_DIR": str(tmp_path / str(n)),
                "PATCHBAY_PORT": str(port),
            }
            replica = Replica(n, f"http://127.0.0.1:{port}", own, tmp_path / f"replica-{n}.log")
            replica.start()
            started.append(replica)
        deadline = time.monotonic() + 180
        for replica in started:
            replica.wait_ready(deadline)
        yield started
    finally:
        for replica in started:
            replica.kill()


@contextlib.contextmanager
def replicas_running(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    """`count` `patchbay serve` processes (one worker each), each on its own port, started side by
    side; their base URLs once each /readyz answers 200."""
    with replica_processes(tmp_path, env, count) as started:
        yield [r.url for r in started]
