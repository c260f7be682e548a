"""Connection verification over real loopback HTTP against the emulators."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import ErrorClass, WireProtocol
from providers.upstream_pool import UpstreamClients
from routing.catalog import default_catalog
from routing.guard import GuardPolicy
from routing.tables import Connection
from routing.verify import VerifyTools, verify
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.scripted import CanaryCredential

KEY = "sk-test-CANARY-" + secrets.token_hex(8)


@pytest.fixture
def openai_emu() -> Iterator[tuple[OpenAIEmulator, str]]:
    emu = OpenAIEmulator("compat", api_key=KEY, models=("llama-3-70b",))
    with ServedApp(emu) as served:
        yield emu, served.url


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as c:
        yield c


def tools(clients: UpstreamClients, *, allow_private: bool = True) -> VerifyTools:
    return VerifyTools(
        clients=clients,
        adapters={
            WireProtocol.OPENAI_CHAT: OpenAIChatAdapter(clients),
            WireProtocol.ANTHROPIC_MESSAGES: AnthropicMessagesAdapter(clients),
        },
        catalog=default_catalog(),
        guard=GuardPolicy(allow_private=allow_private, allow_plain_http=allow_private),
    )


def custom_row(base_url: str) -> Connection:
    return Connection(
        id="conn_x", org_id="org_x", provider="openai_compatible", name="mylab", base_url=base_url, models=[]
    )


async def test_good_key_passes_every_probe_and_records_models(
    openai_emu: tuple[OpenAIEmulator, str], clients: UpstreamClients
) -> None:
    emu, url = openai_emu
    row = custom_row(url + "/v1")
    outcome = await verify(row, CanaryCredential(KEY), tools(clients))
    assert [r.name for r in outcome.results] == ["test_auth", "list_models", "test_text"]
    assert outcome.ok, outcome.first_failure
    assert row.health_status == "ok" and row.health_error_class is None
    assert row.health_models == ["llama-3-70b"]
    assert row.health_checked_at is not None
    sent = emu.chat_requests[-1].json
    assert sent["model"] == "llama-3-70b" and sent["max_tokens"] <= 5


async def test_wrong_key_is_recorded_as_auth_failure_without_the_key(
    openai_emu: tuple[OpenAIEmulator, str], clients: UpstreamClients
) -> None:
    emu, url = openai_emu
    row = custom_row(url + "/v1")
    outcome = await verify(row, CanaryCredential("sk-test-CANARY-wrong"), tools(clients))
    assert not outcome.ok
    failure = outcome.first_failure
    assert failure is not None and failure.name == "test_auth" and failure.error_class is ErrorClass.AUTH
    assert row.health_status == "failed" and row.health_error_class == "auth"
    assert "CANARY" not in (failure.message or "")
    assert emu.chat_requests == []  # no paid call after a failed auth check


async def test_guard_refuses_loopback_at_connect_time(
    openai_emu: tuple[OpenAIEmulator, str], clients: UpstreamClients
) -> None:
    emu, url = openai_emu
    row = custom_row(url + "/v1")
    outcome = await verify(row, CanaryCredential(KEY), tools(clients, allow_private=False))
    assert [r.name for r in outcome.results] == ["guard"]
    assert row.health_status == "failed"
    assert emu.requests == []


async def test_anthropic_preset_checks_the_models_endpoint(clients: UpstreamClients) -> None:
    emu = AnthropicEmulator(api_key=KEY)
    with ServedApp(emu.app) as served:
        row = Connection(
            id="conn_a", org_id="org_x", provider="anthropic", name="default", base_url=served.url, models=[]
        )
        outcome = await verify(row, CanaryCredential(KEY), tools(clients), model="claude-haiku-4-5")
    assert outcome.ok, outcome.first_failure
    assert outcome.models
