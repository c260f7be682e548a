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
from tests import databases
from tests.collector import collector_off  # noqa: F401  (a fixture for every test)

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


def pytest_sessionfinish(session: pytest.Session) -> None:
    databases.finish()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL on each backend: empty, or already migrated when the test also takes
    `db` (a copy of a migrated template: tests/databases.py)."""
    migrated = "db" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "patchbay-test.db"
        if migrated:
            await databases.sqlite_migrated(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    _require_service("PostgreSQL", *databases.pg_host_port())
    if migrated:
        # Nothing made ahead during a test that counts what the cyclic collector finds.
        name = await databases.postgres.migrated(ahead="collector_off" not in request.fixturenames)
    else:
        name = "pb_test_" + secrets.token_hex(6)
        await databases.pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield databases.pg_url(name)
    finally:
        databases.postgres.drop(name)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A fresh database on each backend, migrated to head (the upgrade finds it there already)."""
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
