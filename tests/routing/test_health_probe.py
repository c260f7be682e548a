"""The scheduled health probe: bounded rounds of the cheap probes, oldest check first, platform
connections only when configured, and no generation (no chat request reaches the upstream)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.orgs import Org
from providers.credentials import Credential
from providers.upstream_pool import UpstreamClients
from routing.health_probe import HealthProbe
from routing.tables import Connection
from server.db import Database
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.scripted import CanaryCredential
from tests.routing.test_verify import tools

KEY = "sk-test-CANARY-" + secrets.token_hex(8)


@pytest.fixture
def lab() -> Iterator[tuple[OpenAIEmulator, str]]:
    emu = OpenAIEmulator("compat", api_key=KEY, models=("llama-3-70b",))
    with ServedApp(emu) as served:
        yield emu, served.url + "/v1"


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as c:
        yield c


async def _credential(session: AsyncSession, row: Connection) -> Credential:
    return CanaryCredential(KEY)


async def _seed(db: Database, url: str) -> None:
    async with db.session() as s:
        s.add(Org(id="org_a", name="a", tier="enterprise"))
        await s.flush()
        for name in ("one", "two", "three"):
            s.add(
                Connection(
                    id=f"conn_{name}",
                    org_id="org_a",
                    provider="openai_compatible",
                    name=name,
                    base_url=url,
                    credential_kind="api_key",
                    credential_source="byok",
                    models=[],
                )
            )
        s.add(
            Connection(
                id="conn_plat",
                org_id=None,
                provider="openai_compatible",
                name="plat",
                base_url=url,
                credential_kind="api_key",
                credential_source="platform",
                models=[],
            )
        )
        s.add(
            Connection(
                id="conn_off",
                org_id="org_a",
                provider="openai_compatible",
                name="off",
                base_url=url,
                credential_kind="api_key",
                credential_source="byok",
                status="disabled",
                models=[],
            )
        )


async def _health(db: Database) -> dict[str, str | None]:
    async with db.session() as s:
        return {c.name: c.health_status for c in await s.scalars(select(Connection))}


async def test_rounds_are_bounded_oldest_first_and_generate_nothing(
    db: Database, lab: tuple[OpenAIEmulator, str], clients: UpstreamClients
) -> None:
    emu, url = lab
    await _seed(db, url)
    probe = HealthProbe(db.sessions, _credential, lambda: tools(clients), interval=60, batch=2)

    first = await probe.probe_once()
    assert len(first) == 2
    second = await probe.probe_once()
    # The one never checked goes before the two just checked.
    assert len(second) == 2 and (set(first) | set(second)) == {
        f"openai_compatible:{n}" for n in ("one", "two", "three")
    }
    assert await _health(db) == {"one": "ok", "two": "ok", "three": "ok", "plat": None, "off": None}
    assert emu.chat_requests == []


async def test_platform_connections_only_when_configured(
    db: Database, lab: tuple[OpenAIEmulator, str], clients: UpstreamClients
) -> None:
    _, url = lab
    await _seed(db, url)
    probe = HealthProbe(db.sessions, _credential, lambda: tools(clients), interval=60, include_platform=True)
    assert "openai_compatible:plat" in await probe.probe_once()
    assert (await _health(db))["plat"] == "ok"
