"""A real Patchbay on a loopback port, in front of real emulators on their own loopback ports.

The app runs under uvicorn (lifespan on) as a task on the test's event loop, so its database
engine and the test's share one loop; the emulators run on their own threads
(`tests/emulators/harness.py`). The org has two connections with canary keys: `openai:main`
(the OpenAI emulator) and `mistral:default` (a second emulator in Mistral's flavour), and a
chat chain `openai/gpt-4o-mini` then `mistral/mistral-small-latest`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from providers.vault.secret import Secret
from server import accounts
from server.app import create_app
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from server.v1.ratelimit import RateLimit
from tests.emulators.harness import ServedGroup
from tests.emulators.openai import OpenAIEmulator
from tests.serving import uvicorn_in_loop

OPENAI_KEY = "sk-proj-CANARY-openai-0123456789abcdef"
MISTRAL_KEY = "mk-CANARY-mistral-0123456789abcdef"
CANARIES = (OPENAI_KEY, MISTRAL_KEY)
TEST_MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


class Upstreams(ServedGroup):
    def __init__(self) -> None:
        self.openai = OpenAIEmulator("openai", api_key=OPENAI_KEY, models=("gpt-4o-mini",))
        self.mistral = OpenAIEmulator("mistral", api_key=MISTRAL_KEY, models=("mistral-small-latest",))
        super().__init__(self.openai, self.mistral)

    @property
    def openai_url(self) -> str:
        return self.served[0].url + "/v1"

    @property
    def mistral_url(self) -> str:
        return self.served[1].url + "/v1"

    def reset(self) -> None:
        self.openai.reset()
        self.mistral.reset()


@pytest.fixture(scope="module")
def upstreams_served() -> Iterator[Upstreams]:
    with Upstreams() as u:
        yield u


@pytest.fixture
def upstreams(upstreams_served: Upstreams) -> Upstreams:
    upstreams_served.reset()
    return upstreams_served


@pytest.fixture
def use_redis() -> bool:
    """Parametrize to True to run the gateway on Redis (cooldowns, rate limits, change notices)."""
    return False


@pytest.fixture
def rate_limit() -> RateLimit | None:
    """Parametrize to limit each key; None turns limiting off."""
    return None


@pytest.fixture
def overrides() -> Overrides:
    """Override in a test module to substitute parts of the composition root."""
    return Overrides()


@pytest.fixture
def settings(
    tmp_path: Path, db_url: str, use_redis: bool, rate_limit: RateLimit | None, request: pytest.FixtureRequest
) -> Settings:
    return Settings(
        api_key_rate_limit=f"{rate_limit.requests}/{rate_limit.per_seconds}" if rate_limit else "off",
        redis_url=request.getfixturevalue("redis_url") if use_redis else None,
        data_dir=tmp_path,
        database_url=db_url,
        admin_token="admin-test-token-0123456789abcdefghij",
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        master_key=TEST_MASTER_KEY,
    )


@dataclass
class Patchbay:
    url: str
    services: Services
    key: str
    org_id: str
    agent_key: str

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"authorization": f"Bearer {key or self.key}"}, timeout=10
        )


async def _seed(svc: Services, up: Upstreams) -> tuple[str, str, str]:
    async with svc.db.session() as s:
        org = await accounts.create_org(s, "Acme")
        conns = svc.connections()
        await conns.create(
            s, org.id, provider="openai", name="main", base_url=up.openai_url, key=Secret(OPENAI_KEY)
        )
        await conns.create(s, org.id, provider="mistral", base_url=up.mistral_url, key=Secret(MISTRAL_KEY))
        agents = svc.agents()
        await agents.set_org_routing(
            s, org.id, chains={"chat": ["openai/gpt-4o-mini", "mistral/mistral-small-latest"]}
        )
        await agents.create(s, org.id, "support", chains={"chat": ["mistral/mistral-small-latest"]})
        key = await accounts.create_api_key(s, org.id, name="test")
        agent_key = await accounts.create_api_key(s, org.id, agent="support", name="agent")
    return org.id, key.key, agent_key.key


@pytest.fixture
async def patchbay(
    settings: Settings, db: Database, upstreams: Upstreams, overrides: Overrides
) -> AsyncIterator[Patchbay]:
    services = Services.build(settings, db, overrides)
    org_id, key, agent_key = await _seed(services, upstreams)
    app = create_app(settings, services=services)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    async with uvicorn_in_loop(config):
        yield Patchbay(
            url=f"http://127.0.0.1:{config.port}",
            services=services,
            key=key,
            org_id=org_id,
            agent_key=agent_key,
        )
