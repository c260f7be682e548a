"""The routed call: snapshot from the registry, preflight hold, executor, one usage segment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from billing.usage import SegmentStatus
from foundation.audit import MemoryAudit
from providers.contract import BillingSource, ErrorClass, ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.types import (
    ChatRequest,
    ImagePart,
    JsonObjectFormat,
    Message,
    Role,
    TextDelta,
    TextPart,
    ToolSpec,
    Usage,
)
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing.agents import Agents
from routing.catalog import default_catalog
from routing.connections import Connections
from routing.cooldown_store import InProcessCooldownStore
from routing.errors import AllAttemptsFailedError, NoRouteError
from routing.executor import Executor
from routing.guard import GuardPolicy
from routing.intents import Intent
from routing.registry import Registry
from routing.resolver import Resolver
from routing.router import CallContext, Router, infer_intent
from server import accounts
from server.db import Database
from tests.routing.fakes import FakeChatAdapter, FakePreflight, FakeWallClock, Recorder, Reply, fail


@dataclass
class Setup:
    router: Router
    adapter: FakeChatAdapter
    usage: Recorder
    preflight: FakePreflight
    org_id: str
    agent_id: str


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="", messages=(Message(Role.USER, (TextPart(text),)),))


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[Setup]:
    vault = Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        conns = Connections(vault, GuardPolicy())
        await conns.create(s, org.id, provider="openai", name="main", key=Secret("sk-one"))
        await conns.create(s, org.id, provider="mistral", key=Secret("mk-two"))
        await Agents().set_org_routing(
            s, org.id, chains={"chat": ["openai/gpt-4o-mini", "mistral/mistral-small-latest"]}
        )
        agent = await Agents().create(s, org.id, "support", chains={"chat": ["mistral/mistral-small-latest"]})
    registry = Registry(db.sessions, vault)
    adapter = FakeChatAdapter()
    resolver = Resolver(default_catalog())
    executor = Executor(
        resolver=resolver,
        store=InProcessCooldownStore(),
        credentials=registry.credential,
        adapters={WireProtocol.OPENAI_CHAT: adapter},
        clock=FakeWallClock(),
    )
    usage, preflight = Recorder(), FakePreflight()
    router = Router(registry=registry, resolver=resolver, executor=executor, usage=usage, preflight=preflight)
    yield Setup(router, adapter, usage, preflight, org.id, agent.id)
    await registry.aclose()


async def test_stream_records_one_segment_billed_to_the_fallback(setup: Setup) -> None:
    setup.adapter.script("gpt-4o-mini", fail(ErrorClass.AUTH, 401))
    ctx = CallContext(org_id=setup.org_id, api_key_id="key_1", request_id="req_1")
    call = await setup.router.stream(ctx, ask(), "default")
    text = "".join([e.text async for e in call if isinstance(e, TextDelta)])
    assert text == "hello"
    assert call.served is not None and call.served.connection.profile_id == "mistral:default"
    assert [c.key for c in setup.adapter.calls] == ["sk-one", "mk-two"]
    [segment] = setup.usage.segments
    assert (segment.provider, segment.profile_id, segment.model) == (
        "mistral",
        "mistral:default",
        "mistral-small-latest",
    )
    assert segment.billing_source is BillingSource.BYOK and segment.status is SegmentStatus.OK
    assert (segment.api_key_id, segment.request_id, segment.intent) == ("key_1", "req_1", "chat")
    assert segment.tokens.input_tokens == 3
    assert setup.preflight.hold_.settled == [(BillingSource.BYOK, Usage(input_tokens=3))]
    [request] = setup.preflight.requests
    assert request.requested_model == "default" and request.request_id == "req_1"
    # The hold is sized from what may serve the chain: both BYOK, at the catalog's prices.
    mini = default_catalog().info(ProviderId.OPENAI, "gpt-4o-mini")
    small = default_catalog().info(ProviderId.MISTRAL, "mistral-small-latest")
    assert mini is not None and small is not None and None not in (mini.price, small.price)
    assert request.offers == ((BillingSource.BYOK, mini.price), (BillingSource.BYOK, small.price))
    assert request.input_tokens_estimate > 0
    # The settle is priced by the model that served it.
    assert setup.preflight.hold_.prices == [small.price]


async def test_failure_after_output_is_recorded_as_failed(setup: Setup) -> None:
    boom = ProviderError(ErrorClass.SERVER_ERROR, "boom", provider="fake")
    setup.adapter.script("gpt-4o-mini", Reply(text=("par", "tial"), error=boom))
    call = await setup.router.stream(CallContext(org_id=setup.org_id), ask(), None)
    seen: list[str] = []
    with pytest.raises(ProviderError):
        async for event in call:
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert seen == ["par", "tial"]
    assert [s.status for s in setup.usage.segments] == [SegmentStatus.FAILED]


async def test_nothing_served_releases_the_hold_and_records_nothing(setup: Setup) -> None:
    for model in ("gpt-4o-mini", "mistral-small-latest"):
        setup.adapter.script(model, fail(ErrorClass.AUTH, 401))
    call = await setup.router.stream(CallContext(org_id=setup.org_id), ask(), None)
    with pytest.raises(AllAttemptsFailedError):
        async for _ in call:
            pass
    assert setup.usage.segments == [] and setup.preflight.hold_.released == 1


async def test_closing_early_closes_the_upstream_and_records_cancelled(setup: Setup) -> None:
    setup.adapter.script("gpt-4o-mini", Reply(text=("a", "b", "c")))
    call = await setup.router.stream(CallContext(org_id=setup.org_id), ask(), None)
    async for event in call:
        if isinstance(event, TextDelta):
            break
    await call.aclose()
    assert setup.adapter.closed == 1
    assert [s.status for s in setup.usage.segments] == [SegmentStatus.CANCELLED]


async def test_complete_records_and_settles(setup: Setup) -> None:
    result = await setup.router.complete(CallContext(org_id=setup.org_id), ask(), "openai/gpt-4o-mini")
    assert result.response.text == "hello" and result.billing_source is BillingSource.BYOK
    assert result.trace.header() == "openai:main/gpt-4o-mini=served"
    assert [s.tokens for s in setup.usage.segments] == [Usage(3, 1)]
    assert setup.preflight.hold_.settled == [(BillingSource.BYOK, Usage(3, 1))]


async def test_the_agent_bound_to_the_key_chooses_the_chain(setup: Setup) -> None:
    ctx = CallContext(org_id=setup.org_id, agent_id=setup.agent_id)
    result = await setup.router.complete(ctx, ask(), None)
    assert result.served.connection.profile_id == "mistral:default"
    assert setup.usage.segments[0].agent_id == setup.agent_id


async def test_the_agent_of_a_key_is_read_from_the_snapshot(setup: Setup) -> None:
    agent = await setup.router.agent(setup.org_id, setup.agent_id)
    assert agent is not None and agent.name == "support"
    assert await setup.router.agent(setup.org_id, None) is None
    assert await setup.router.agent(setup.org_id, "agt_unknown") is None


async def test_unknown_model_fails_before_any_hold(setup: Setup) -> None:
    with pytest.raises(NoRouteError):
        await setup.router.stream(CallContext(org_id=setup.org_id), ask(), "nosuch-model")
    with pytest.raises(NoRouteError):
        await setup.router.complete(CallContext(org_id="org_gone"), ask(), None)
    assert setup.preflight.requests == [] and setup.adapter.calls == []


def test_intent_is_inferred_from_the_request() -> None:
    image = Message(Role.USER, (ImagePart("data:image/png;base64,AA=="),))
    assert infer_intent(ask()) is Intent.CHAT
    assert infer_intent(ChatRequest(model="", messages=(image,))) is Intent.VISION
    assert (
        infer_intent(ChatRequest(model="", messages=ask().messages, tools=(ToolSpec("f"),))) is Intent.TOOLS
    )
    structured = ChatRequest(model="", messages=ask().messages, response_format=JsonObjectFormat())
    assert infer_intent(structured) is Intent.STRUCTURED


async def test_a_call_closed_before_iterating_releases_its_hold(setup: Setup) -> None:
    call = await setup.router.stream(CallContext(org_id=setup.org_id), ask(), None)
    await call.aclose()
    await call.aclose()
    assert setup.preflight.hold_.released == 1
    assert setup.usage.segments == [] and setup.adapter.calls == []
    assert [e async for e in call] == []
