"""The gateway's upstream pool, on both of its clients (`PATCHBAY_UPSTREAM_CLIENT`): the guard
checks every address either connects to, and neither keeps a cookie."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from providers.http import Timeouts, request
from providers.upstream_pool import UpstreamClients, tls_context
from routing.errors import BaseUrlRefusedError
from routing.guard import GuardPolicy
from server.v1.gateway import guarded_clients, guarded_session
from tests.emulators.harness import ServedApp

FAST = Timeouts(connect=2, first_byte=2, between_chunks=2)


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok:" + request.headers.get("user-agent", ""))


async def session_cookie(request: Request) -> PlainTextResponse:
    """Answers with a session cookie, as an auth proxy in front of an endpoint may; echoes any sent."""
    reply = PlainTextResponse("cookie:" + request.headers.get("cookie", ""))
    reply.set_cookie("session", "first-org")
    return reply


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    with ServedApp(Starlette(routes=[Route("/v1/ping", ping), Route("/v1/session", session_cookie)])) as s:
        yield s


CLIENTS = pytest.mark.parametrize("client", ["h1", "aiohttp"])


@CLIENTS
async def test_the_guarded_pool_refuses_a_private_address(served: ServedApp, client: Any) -> None:
    async with guarded_clients(GuardPolicy(), client=client) as clients:
        assert clients.backend == client
        with pytest.raises(BaseUrlRefusedError):
            await request(clients, "GET", f"{served.url}/v1/ping", headers={}, timeouts=FAST, provider="t")


@CLIENTS
async def test_the_guarded_pool_serves_an_allowed_address(served: ServedApp, client: Any) -> None:
    policy = GuardPolicy(allow_private=True, allow_plain_http=True)
    async with guarded_clients(policy, client=client) as clients:
        reply = await request(
            clients, "GET", f"{served.url}/v1/ping", headers={}, timeouts=FAST, provider="t"
        )
    assert reply.status == 200 and reply.body == b"ok:patchbay/0.1"


@CLIENTS
async def test_the_guarded_pool_checks_and_connects_to_what_the_injected_dns_answers(
    served: ServedApp, client: Any
) -> None:
    # The system resolver does not know this name: being served proves the injected answer was used.
    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "emulator.test" else []

    url = f"http://emulator.test:{served.port}/v1/ping"
    async with guarded_clients(GuardPolicy(), resolve=dns, client=client) as clients:
        with pytest.raises(BaseUrlRefusedError, match="emulator.test resolves to loopback address 127.0.0.1"):
            await request(clients, "GET", url, headers={}, timeouts=FAST, provider="t")
    policy = GuardPolicy(allow_private=True, allow_plain_http=True)
    async with guarded_clients(policy, resolve=dns, client=client) as clients:
        reply = await request(clients, "GET", url, headers={}, timeouts=FAST, provider="t")
    assert reply.status == 200


@CLIENTS
async def test_the_guarded_pool_keeps_no_cookie_from_one_call_for_the_next(
    served: ServedApp, client: Any
) -> None:
    # The server's one client per origin serves every org: a cookie kept from one org's reply would
    # go out with another org's request. A name (not an address), since aiohttp ignores cookies
    # from addresses.
    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "endpoint.test" else []

    url = f"http://endpoint.test:{served.port}/v1/session"
    policy = GuardPolicy(allow_private=True, allow_plain_http=True)
    async with guarded_clients(policy, resolve=dns, client=client) as clients:
        replies = [
            await request(clients, "GET", url, headers={}, timeouts=FAST, provider="t") for _ in range(2)
        ]
    assert all("session=first-org" in reply.headers.get("set-cookie", "") for reply in replies)
    assert [reply.body for reply in replies] == [b"cookie:", b"cookie:"]


async def test_every_origin_shares_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading the CA bundle costs ~27 ms of CPU and 0.8 MiB: made per origin, it blocked the
    # event loop at each new private endpoint's first call and was never freed.
    made: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    tls_context.cache_clear()
    guard = GuardPolicy()
    pools = [
        UpstreamClients(backend="h1"),
        UpstreamClients(backend="aiohttp"),
        UpstreamClients(backend="httpx"),
        UpstreamClients(session_factory=lambda: guarded_session(guard)),
        guarded_clients(guard),
    ]
    try:
        for pool in pools:
            for n in range(3):
                pool.client_for(f"https://endpoint-{n}.example.com/v1")
        assert len(made) == 1
    finally:
        for pool in pools:
            await pool.aclose()
        tls_context.cache_clear()
