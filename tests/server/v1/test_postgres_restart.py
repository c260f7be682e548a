"""PostgreSQL stopped and started again under load: requests fail cleanly meanwhile, then the
same process recovers on its own (docs/reliability.md#postgresql-restarted).

The gateway runs on a private PostgreSQL cluster (tests/private_services.py), never the shared
one; the cluster is stopped in `immediate` mode, which cuts every connection as a crash does.
Chat requests keep going the whole time; an admin read (which always needs the database) is
asked during the outage and after it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from billing.tables import UsageRecord
from tests.private_services import PrivatePostgres, private_postgres
from tests.server.v1.conftest import Patchbay
from tests.server.v1.load import BOUND, load

ADMIN = {"authorization": "Bearer admin-test-token-0123456789abcdefghij"}


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def db_url(postgres: PrivatePostgres) -> str:
    """The private server's database; tests/conftest.py's `db` migrates it."""
    return postgres.url


async def _usage_rows(patchbay: Patchbay) -> int:
    async with patchbay.services.db.session() as s:
        count = await s.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.org_id == patchbay.org_id)
        )
    return int(count or 0)


async def test_requests_fail_cleanly_while_postgres_is_down_and_recover_after(
    patchbay: Patchbay, postgres: PrivatePostgres
) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url, headers=ADMIN, timeout=30) as admin:
        orgs = f"/admin/v1/orgs/{patchbay.org_id}/agents"
        assert (await admin.get(orgs)).status_code == 200
        async with load(patchbay) as running:
            await running.more(12)
            before = len(running.statuses)
            await asyncio.to_thread(postgres.stop)
            await running.more(12)
            down_admin = await admin.get(orgs)
            during = Counter(running.statuses[before:])
            await asyncio.to_thread(postgres.start)
            deadline = time.monotonic() + BOUND
            while (await admin.get(orgs)).status_code != 200:
                assert time.monotonic() < deadline, "the admin API did not recover"
                await asyncio.sleep(0.1)  # polling for recovery
            after = len(running.statuses)
            await running.more(12)
        recovered = Counter(running.statuses[after:])
    # Chat keeps being served from what the process already holds (keys, routing); a request
    # that needs the database gets a 503 that says so, with a retry-after, not a 500.
    assert set(during) <= {200, 503}, during
    assert down_admin.status_code == 503, down_admin.text
    assert down_admin.json()["error"]["type"] == "database_unavailable"
    assert down_admin.headers["retry-after"] == "2"
    assert set(recovered) == {200}, recovered
    # Usage recorded while the database was away waited in the write-behind buffer: none lost.
    await patchbay.services.usage.flush()
    assert await _usage_rows(patchbay) == running.statuses.count(200)
