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
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN_DSN, _migrated_template, _pg_admin, _pg_url, _require_service
from tests.emulators.harness import free_port
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
    host, _, port = PG_ADMIN_DSN.split("@", 1)[-1].split("/", 1)[0].partition(":")
    _require_service("PostgreSQL", host, int(port or 5432))
    name = "pb_replicas_" + secrets.token_hex(6)
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{await _migrated_template()}"')
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def replicas_running(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    """`count` `patchbay serve` processes (one worker each), each on its own port, started side by
    side; their base URLs once each /readyz answers 200."""
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for n in range(count):
            port = free_port()
            log = tmp_path / f"replica-{n}.log"  # a file, not a pipe: a full pipe would stall the server
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    [PATCHBAY, "serve"],
                    env={**env, "PATCHBAY_DATA_DIR": str(tmp_path / str(n)), "PATCHBAY_PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            started.append((proc, f"http://127.0.0.1:{port}"))
        deadline = time.monotonic() + 180  # a loaded CI machine imports slowly
        for proc, base in started:
            while True:
                assert proc.poll() is None, _log_of(tmp_path, started, proc)
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, (
                    f"a replica did not get ready in 180 s: {_log_of(tmp_path, started, proc)}"
                )
                time.sleep(0.2)  # polling for readiness, not standing in for it
        yield [base for _, base in started]
    finally:
        for proc, _ in started:
            proc.kill()
            proc.wait(10)


def _log_of(
    tmp_path: Path, started: list[tuple[subprocess.Popen[bytes], str]], proc: subprocess.Popen[bytes]
) -> str:
    """The tail of what a replica wrote to stderr, for a failure message."""
    n = [p for p, _ in started].index(proc)
    return (tmp_path / f"replica-{n}.log").read_text(errors="replace")[-4000:]
