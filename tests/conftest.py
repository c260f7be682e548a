"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis.

Storage tests take the `db_url` (fresh empty database) or `db` (fresh migrated `Database`)
fixture and run once per backend. `collector_off` (from `tests.collector`) turns the cyclic
garbage collector off for a test. PostgreSQL and Redis are used when reachable; under CI
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
from tests.collector import collector_off  # noqa: F401  (a fixture for every test)

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


_pg_template: list[str] = []


def _pg_url(name: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


async def _migrated_template() -> str:
    """One migrated PostgreSQL database per test run; each test copies it (much faster than migrating)."""
    if not _pg_template:
        name = "pb_tmpl_" + secrets.token_hex(6)
        await _pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(_pg_url(name))
        try:
            await database.upgrade()
        finally:
            await database.dispose()
        _pg_template.append(name)
    return _pg_template[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    import asyncio

    for name in _pg_template:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL on each backend: empty, or already migrated when the test also takes `db`."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'patchbay-test.db'}"
        return
    host, port = _pg_host_port()
    _require_service("PostgreSQL", host, port)
    name = "pb_test_" + secrets.token_hex(6)
    if "db" in request.fixturenames:
        await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{await _migrated_template()}"')
    else:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
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
        if (
            f"[{backend}" in report.nodeid
            or f"-{backend}]" in report.nodeid
            or f"-{backend}-" in report.nodeid
        ):
            _backend_outcomes[(backend, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _backend_outcomes:
        return
    terminalreporter.section("storage backends")
    for backend in ("sqlite", "postgres"):
        counts = {outcome: n for (b, outcome), n in _backend_outcomes.items() if b == backend}
        line = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none"
        terminalreporter.write_line(f"{backend}: {line}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow files first. Under `--dist loadfile` each file runs whole on one worker, in the order
    collected: a long file that starts last keeps the run going after the other workers are
    done, so the long ones start first and the short ones fill in around them. A file with any
    slow test counts as slow and stays in one piece; the order within a file, and among the fast
    and the slow files, is kept."""
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)
