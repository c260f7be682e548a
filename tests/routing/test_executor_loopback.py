"""The acceptance scenarios of issue 5 against the OpenAI emulator over real loopback HTTP.

The real `openai-chat` adapter talks to emulators served on 127.0.0.1 through a guarded
transport on each upstream backend (private addresses allowed, as an operator of self-hosted models would set it).
Cooldown windows run on a fake wall clock, so "during the window" and "after it" are exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import WireProtocol
from providers.types import TextDelta
from providers.upstream_pool import UpstreamClients
from routing.catalog import default_catalog
from routing.cooldown_store import CooldownStore, InProcessCooldownStore, RedisCooldownStore
from routing.errors import AllAttemptsFailedError
from routing.executor import Executor
from routing.guard import GuardPolicy, endpoint_guard, guarded_aiohttp_transport, guarded_transport
from routing.intents import Intent
from routing.model import ConnectionView, OrgRouting
from routing.resolver import Resolver, RouteRequest
from tests.emulators.harness import ServedGroup
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.emulators.openai_errors import ERRORS, rate_limited
from tests.emulators.tcp_proxy import ClosesKeptConnections
from tests.routing.fakes import FakeCredential, FakeWallClock, OrgBuilder, chat, conn

POLICY = GuardPolicy(allow_private=True)
KEYS = {
    "openai:main": "sk-main-CANARY-1111",
    "openai:second": "sk-second-CANARY-2222",
    "mistral:default": "mk-CANARY-3333",
}


class Emulators(ServedGroup):
    def __init__(self) -> None:
        self.openai = OpenAIEmulator("openai", models=("gpt-4o-mini",))
        self.mistral = OpenAIEmulator("mistral", models=("mistral-small-latest",))
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
def emulators() -> Iterator[Emulators]:
    with Emulators() as e:
        yield e


@pytest.fixture(params=["aiohttp", "httpx"])
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamClients]:
    """Both upstream backends, each with the base URL guard inside its connection layer."""
    factory = (
        (lambda: guarded_aiohttp_transport(POLICY))
        if request.param == "aiohttp"
        else (lambda: guarded_transport(POLICY))
    )
    async with UpstreamClients(transport_factory=factory) as c:
        yield c


def org_for(e: Emulators, *openai_names: str, position: bool = False) -> OrgRouting:
    conns: list[ConnectionView] = [
        conn("openai", name, base_url=e.openai_url, position=i + 1 if position else 0)
        for i, name in enumerate(openai_names)
    ]
    conns.append(conn("mistral", base_url=e.mistral_url))
    return OrgBuilder(
        connections=conns, matrix={Intent.CHAT: ("openai/gpt-4o-mini", "mistral/mistral-small-latest")}
    ).build()


def executor(clients: UpstreamClients, store: CooldownStore, clock: FakeWallClock) -> Executor:
    return Executor(
        resolver=Resolver(default_catalog()),
        store=store,
        credentials=lambda c: FakeCredential(KEYS[c.profile_id]),
        adapters={WireProtocol.OPENAI_CHAT: OpenAIChatAdapter(clients)},
        clock=clock,
        guard=endpoint_guard(POLICY),
    )


async def run(ex: Executor, org: OrgRouting) -> tuple[str, str]:
    stream = ex.stream(org, RouteRequest(), chat())
    text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    return text, stream.trace.header()


def keys_seen(emulator: OpenAIEmulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emulator.chat_requests]


async def test_rate_limited_primary_falls_back_and_is_skipped_for_the_window(
    emulators: Emulators, clients: UpstreamClients
) -> None:
    emulators.reset()
    clock = FakeWallClock()
    ex = executor(clients, InProcessCooldownStore(), clock)
    org = org_for(emulators, "main")
    emulators.openai.always(rate_limited(20))

    text, header = await run(ex, org)
    assert text == Scenario().text
    assert header == "openai:main/gpt-4o-mini=failed:rate_limit;mistral:default/mistral-small-latest=served"
    assert len(emulators.openai.chat_requests) == 1

    clock.advance(19.9)
    _, header = await run(ex, org)
    assert header.startswith("openai:main/gpt-4o-mini=skipped:cooldown:rate_limit;")
    assert len(emulators.openai.chat_requests) == 1  # zero requests during the window
    assert len(emulators.mistral.chat_requests) == 2

    emulators.openai.reset()
    clock.advance(0.1)
    _, header = await run(ex, org)
    assert header == "openai:main/gpt-4o-mini=served"
    assert len(emulators.openai.chat_requests) == 1


async def test_two_profiles_rotate(emulators: Emulators, clients: UpstreamClients) -> None:
    emulators.reset()
    clock = FakeWallClock()
    ex = executor(clients, InProcessCooldownStore(), clock)
    org = org_for(emulators, "main", "second")
    for _ in range(4):
        await run(ex, org)
        clock.advance(1)
    assert keys_seen(emulators.openai) == [KEYS["openai:main"], KEYS["openai:second"]] * 2


async def test_invalid_key_disables_its_profile_and_the_next_takes_over(
    emulators: Emulators, clients: UpstreamClients
) -> None:
    emulators.reset()
    emulators.openai.api_key = KEYS["openai:second"]
    try:
        clock = FakeWallClock()
        ex = executor(clients, InProcessCooldownStore(), clock)
        org = org_for(emulators, "main", "second", position=True)
        _, header = await run(ex, org)
        assert header == "openai:main/gpt-4o-mini=failed:auth;openai:second/gpt-4o-mini=served"
        for _ in range(3):
            clock.advance(60)
            _, header = await run(ex, org)
            assert header == "openai:second/gpt-4o-mini=served"
        assert keys_seen(emulators.openai) == [KEYS["openai:main"]] + [KEYS["openai:second"]] * 4
    finally:
        emulators.openai.api_key = None


async def test_billing_error_disables_for_the_documented_time(
    emulators: Emulators, clients: UpstreamClients
) -> None:
    emulators.reset()
    clock = FakeWallClock()
    ex = executor(clients, InProcessCooldownStore(), clock)
    org = org_for(emulators, "main")
    emulators.openai.enqueue(ERRORS["openai"]["quota_exhausted"])
    _, header = await run(ex, org)
    assert (
        header == "openai:main/gpt-4o-mini=failed:quota_exhausted;mistral:default/mistral-small-latest=served"
    )
    clock.advance(599)
    _, header = await run(ex, org)
    assert header.startswith("openai:main/gpt-4o-mini=skipped:disabled:billing;")
    assert len(emulators.openai.chat_requests) == 1
    clock.advance(1)
    _, header = await run(ex, org)
    assert header == "openai:main/gpt-4o-mini=served"


async def test_every_candidate_failing_returns_one_error_with_the_trace(
    emulators: Emulators, clients: UpstreamClients
) -> None:
    emulators.reset()
    emulators.openai.always(ERRORS["openai"]["server_error"])
    emulators.mistral.always(ERRORS["mistral"]["auth"])
    clock = FakeWallClock()
    ex = executor(clients, InProcessCooldownStore(), clock)
    with pytest.raises(AllAttemptsFailedError) as info:
        await run(ex, org_for(emulators, "main"))
    err = info.value
    assert err.trace.header() == (
        "openai:main/gpt-4o-mini=failed:server_error;mistral:default/mistral-small-latest=failed:auth"
    )
    assert [e.status for e in err.trace.entries] == [500, 401]
    assert err.trace.entries[0].retries == 1
    assert len(emulators.openai.chat_requests) == 2  # one bounded same-model retry
    assert err.last_error is not None and err.last_error.provider == "mistral"
    for key in KEYS.values():
        assert key not in str(err) and key not in repr(err.trace.to_dict())


@pytest.mark.redis
async def test_two_servers_sharing_redis_share_a_cooldown(
    emulators: Emulators, clients: UpstreamClients, redis_url: str, unique_prefix: str
) -> None:
    emulators.reset()
    clock = FakeWallClock()
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        server_a = executor(clients, RedisCooldownStore(redis_a, prefix=unique_prefix), clock)
        server_b = executor(clients, RedisCooldownStore(redis_b, prefix=unique_prefix), clock)
        org = org_for(emulators, "main")
        emulators.openai.enqueue(rate_limited(30))
        _, header = await run(server_a, org)
        assert header.startswith("openai:main/gpt-4o-mini=failed:rate_limit;")
        clock.advance(5)
        _, header = await run(server_b, org)
        assert header.startswith("openai:main/gpt-4o-mini=skipped:cooldown:rate_limit;")
        assert len(emulators.openai.chat_requests) == 1
        clock.advance(25)
        _, header = await run(server_b, org)
        assert header == "openai:main/gpt-4o-mini=served"
    finally:
        keys = [k async for k in redis_a.scan_iter(match=unique_prefix + "*")]
        if keys:
            await redis_a.delete(*keys)
        await redis_a.aclose()
        await redis_b.aclose()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
@pytest.mark.parametrize("backend", ["aiohttp-session", "aiohttp", "httpx"])
async def test_a_kept_connection_the_upstream_closed_is_replaced_at_once(
    emulators: Emulators, backend: str, reset: bool
) -> None:
    """An upstream whose idle timeout closes a kept connection as the next request goes out: the
    request is sent again at once on a new connection, with no backoff and no fallback. On
    each backend: aiohttp's own session (what the server uses), and httpx over either transport."""
    emulators.reset()
    host, port = emulators.served[0].url.removeprefix("http://").split(":")
    factories = {
        "aiohttp": lambda: guarded_aiohttp_transport(POLICY),
        "httpx": lambda: guarded_transport(POLICY),
    }
    clients = UpstreamClients(transport_factory=factories.get(backend))
    async with clients, ClosesKeptConnections(host, int(port), reset=reset) as proxy:
        org = OrgBuilder(
            connections=[conn("openai", "main", base_url=proxy.url(emulators.openai_url))],
            matrix={Intent.CHAT: ("openai/gpt-4o-mini",)},
        ).build()
        clock = FakeWallClock()
        ex = executor(clients, InProcessCooldownStore(), clock)
        replies = []
        for _ in range(2):  # the second on the kept connection, which the proxy closes
            routed = await ex.complete(org, RouteRequest(), chat())
            replies.append((routed.response.text, routed.trace.header()))
    assert replies == [(Scenario().text, "openai:main/gpt-4o-mini=served")] * 2
    assert proxy.cut == 1 and proxy.accepted == 2
    assert clock.slept == []
    assert len(emulators.openai.chat_requests) == 2
