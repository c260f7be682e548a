"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis.

Storage tests take the `db_url` (fresh empty database) or `db` (fresh migrated `Database`)
fixture and run once per backend. PostgreSQL and Redis are used when reachable; under CI
(`CI=true`) an unreachable server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.db import Database

PG_ADMIN_DSN = os.environ.get("PATCHBAY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PATCHBAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"

_backend_outcomes: Counter[tuple[str, str]] = Counter()


def _tcp_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _require_service(name: str, host: str, port: int) -> None:
    if _tcp_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: the real service is required)")
    pytest.skip(message)


def _pg_host_port() -> tuple[str, int]:
    rest = PG_ADMIN_DSN.split("@", 1)[-1]
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.partition(":")
    return host, int(port or 5432)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'patchbay-test.db'}"
        return
    host, port = _pg_host_port()
    _require_service("PostgreSQL", host, port)
    name = "pb_test_" + secrets.token_hex(6)
    await _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A fresh database on each backend, migrated to head."""
    database = Database(db_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def redis_url() -> str:
    _require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def unique_prefix() -> str:
    return "pbtest:" + secrets.token_hex(6) + ":"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for backend in ("sqlite", "postgres"):
        if f"[{backend}" in report.nodeid or f"-{backend}]" in report.nodeid or f"-{backend}-" in report.nodeid:
            _backend_outcomes[(backend, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _backend_outcomes:
        return
    terminalreporter.section("storage backends")
    for backend in ("sqlite", "postgres"):
        counts = {outcome: n for (b, outcome), n in _backend_outcomes.items() if b == backend}
        line = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none"
        terminalreporter.write_line(f"{backend}: {line}")
