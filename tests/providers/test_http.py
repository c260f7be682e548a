"""The upstream HTTP layer over real loopback sockets, on both transports.

Promptness is shown by causes, not stopwatches: a timeout test's server never answers by
itself in time (so only the client's deadline can produce a TIMEOUT), and a cancel test's
server holds the connection and the client's own deadlines are longer than the test waits
(so the disconnect the server records can only be the cancel closing it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client import REGISTRY

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.http import Timeouts, open_stream, request
from providers.redaction import redact, secrets_in
from providers.reply_headers import parse_retry_after
from providers.upstream_pool import (
    IDLE_ORIGIN_SECONDS,
    SWEEP_SECONDS,
    Backend,
    UpstreamClients,
    origin_of,
    upstream_limits,
)
from routing.guard import GuardPolicy
from server.v1.gateway import guarded_session
from tests.emulators.harness import ServedApp, free_port


class Behaviours:
    """A tiny ASGI app: each path is one behaviour; it records client disconnects."""

    def __init__(self) -> None:
        self.disconnects = 0
        self.disconnected = threading.Event()
        self.received = threading.Event()
        self.requests = 0
        self.peers: list[tuple[str, int]] = []
        self.cookies: list[bytes | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        self.peers.append(tuple(scope["client"]))
        self.cookies.append(next((v for k, v in scope["headers"] if k == b"cookie"), None))
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        self.received.set()
        gone = asyncio.Event()

        async def watch() -> None:
            if (await receive())["type"] == "http.disconnect":
                self.disconnects += 1
                self.disconnected.set()
                gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._serve(scope["path"], send, gone)
        finally:
            watcher.cancel()

    async def _serve(self, path: str, send: Any, gone: asyncio.Event) -> None:
        async def start(status: int = 200) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )

        async def body(data: bytes, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": more})

        if path == "/ok":
            await start()
            for part in (b"one ", b"two ", b"three"):
                await body(part)
            await body(b"", more=False)
        elif path == "/slow-headers":
            await asyncio.wait_for(gone.wait(), HOLD)
        elif path == "/silent-body":
            await start()
            await asyncio.wait_for(gone.wait(), HOLD)
        elif path == "/stall":
            await start()
            await body(b"first")
            await asyncio.wait_for(gone.wait(), HOLD)
        elif path == "/drip":
            await start()
            for _ in range(5):
                await body(b".")
                await asyncio.sleep(0.01)
            await body(b"", more=False)
        elif path == "/set-cookie":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"set-cookie", b"session=first-caller; Path=/"),
                    ],
                }
            )
            await body(b"ok", more=False)
        elif path == "/error":
            await start(503)
            await body(b'{"error":"busy"}', more=False)
        elif path == "/abort":
            await start()
            await body(b"partial")
            raise RuntimeError("emulated connection drop")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServedApp, Behaviours]]:
    app = Behaviours()
    with ServedApp(app) as s:
        yield s, app


BACKENDS = ["h1", "httpx", "aiohttp"]
FAST = Timeouts(connect=1, first_byte=0.3, between_chunks=0.3)
STEADY = Timeouts(connect=10, first_byte=10, between_chunks=10)
"""For answers that come: a loaded machine must not turn them into timeouts (FAST is for stalls)."""
HANG_GUARD = 10.0
"""How long a test waits for an event that should follow at once: a bound on a hang only."""
HOLD = 60.0
"""How long the server holds a silent request: longer than any wait of a test."""
PATIENT = Timeouts(connect=1, first_byte=HOLD, between_chunks=HOLD)
"""Client deadlines no test outlives, so none of them can be what closed a connection."""


@pytest.fixture(params=BACKENDS)
async def clients(request: pytest.FixtureRequest) -> Any:
    pool = UpstreamClients(backend=request.param)
    yield pool
    await pool.aclose()


async def test_full_read(served: tuple[ServedApp, Behaviours], clients: UpstreamClients) -> None:
    s, _ = served
    reply = await request(clients, "GET", s.url + "/ok", headers={}, timeouts=STEADY, provider="t")
    assert reply.status == 200
    assert reply.body == b"one two three"
    assert reply.json() is None


async def test_error_status_is_returned_not_raised(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, _ = served
    reply = await request(
        clients, "POST", s.url + "/error", headers={}, body=b"{}", timeouts=STEADY, provider="t"
    )
    assert reply.status == 503
    assert reply.json() == {"error": "busy"}


async def test_one_client_per_origin_created_lazily(served: tuple[ServedApp, Behaviours]) -> None:
    s, _ = served
    pool = UpstreamClients(backend="httpx")
    assert pool.origins == ()
    a = pool.client_for(s.url + "/ok")
    assert pool.client_for(s.url.replace("127.0.0.1", "127.0.0.1") + "/other") is a
    assert pool.client_for("http://localhost:1/x") is not a
    assert set(pool.origins) == {origin_of(s.url), "http://localhost:1"}
    await pool.aclose()
    assert a.is_closed
    with pytest.raises(RuntimeError):
        pool.client_for(s.url)


async def test_sequential_requests_reuse_one_connection(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, app = served
    start = len(app.peers)
    for _ in range(5):
        await request(clients, "GET", s.url + "/ok", headers={}, timeouts=STEADY, provider="t")
    assert len(set(app.peers[start:])) == 1


async def test_a_cookie_one_reply_sets_is_not_sent_with_the_next_request(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    # One client serves every org calling an origin: a kept cookie would carry one org's session
    # into another org's request. By name, since aiohttp's jar would ignore a cookie from an address.
    s, app = served
    url = f"http://localhost:{s.port}/set-cookie"
    start = len(app.cookies)
    for _ in range(3):
        reply = await request(clients, "GET", url, headers={}, timeouts=STEADY, provider="t")
        assert reply.status == 200 and reply.headers.get("set-cookie") == "session=first-caller; Path=/"
    assert app.cookies[start:] == [None, None, None]


def connection_waits(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "patchbay_upstream_connection_waits_total", {"provider": "t", "outcome": outcome}
        )
        or 0.0
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_call_that_finds_every_connection_busy_waits_its_turn_then_fails_without_calling(
    served: tuple[ServedApp, Behaviours], backend: Backend
) -> None:
    s, app = served
    pool = UpstreamClients(backend=backend, limits=upstream_limits(2))
    opened, release = asyncio.Semaphore(0), asyncio.Event()

    async def hold() -> None:
        async with open_stream(pool, "GET", s.url + "/stall", headers={}, timeouts=PATIENT, provider="t"):
            opened.release()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    for _ in holders:
        await asyncio.wait_for(opened.acquire(), HANG_GUARD)
    calls, timed_out, served_after_wait = (
        app.requests,
        connection_waits("timed_out"),
        connection_waits("served"),
    )

    short = Timeouts(connect=0.05, first_byte=HOLD, between_chunks=HOLD)
    with pytest.raises(ProviderError) as info:
        await request(pool, "GET", s.url + "/ok", headers={}, timeouts=short, provider="t")
    assert info.value.error_class is ErrorClass.OVERLOADED and info.value.pool_exhausted
    assert "all 2 of this worker's connections to http://127.0.0.1" in info.value.message
    assert app.requests == calls  # the upstream was never asked
    assert connection_waits("timed_out") == timed_out + 1

    # A call that waits while a slot comes free is served. The task's first step runs before the
    # callback queued after it: it reaches the full slots (no I/O comes first) and waits there, as
    # the `served` count below confirms; then the holders end.
    waiting = asyncio.create_task(
        request(pool, "GET", s.url + "/ok", headers={}, timeouts=STEADY, provider="t")
    )
    asyncio.get_running_loop().call_soon(release.set)
    reply = await asyncio.wait_for(waiting, HANG_GUARD)
    assert reply.body == b"one two three"
    assert connection_waits("served") == served_after_wait + 1
    await asyncio.gather(*holders)
    await pool.aclose()


async def test_an_origin_idle_past_its_kept_connections_is_closed_when_a_new_one_comes(
    served: tuple[ServedApp, Behaviours],
) -> None:
    # A worker holds the origins in use, not every private endpoint it ever called.
    s, _ = served

    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # every name below is this one server: one origin each

    now = [0.0]
    policy = GuardPolicy(allow_private=True, allow_plain_http=True)
    pool = UpstreamClients(session_factory=lambda: guarded_session(policy, resolve=dns), clock=lambda: now[0])
    a, b, c, d = (f"http://{name}.test:{s.port}" for name in "abcd")

    async def get(base: str) -> bytes:
        return (await request(pool, "GET", base + "/ok", headers={}, timeouts=STEADY, provider="t")).body

    assert await get(a) == b"one two three"
    first = pool.client_for(a)
    async with open_stream(pool, "GET", c + "/stall", headers={}, timeouts=PATIENT, provider="t"):
        now[0] += IDLE_ORIGIN_SECONDS + SWEEP_SECONDS
        # A new origin: the idle one is closed; the one with a call open stays, however old.
        assert await get(b) == b"one two three"
        assert set(pool.origins) == {origin_of(b), origin_of(c)}
        await asyncio.wait_for(asyncio.gather(*pool._closing), HANG_GUARD)  # closed in the background
        assert isinstance(first, aiohttp.ClientSession) and first.closed
    # Called again, it gets a new client.
    assert await get(a) == b"one two three"
    assert pool.client_for(a) is not first
    # Within the sweep interval, nothing is looked at again.
    now[0] += IDLE_ORIGIN_SECONDS
    assert await get(d) == b"one two three"
    assert len(pool.origins) == 4
    await pool.aclose()


def test_origin_normalizes_default_ports() -> None:
    assert origin_of("https://api.openai.com/v1/chat") == "https://api.openai.com:443"
    assert origin_of("http://h/v1") == "http://h:80"
    with pytest.raises(ValueError):
        origin_of("/relative")


@pytest.mark.parametrize("path", ["/slow-headers", "/silent-body"])
async def test_first_byte_timeout(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients, path: str
) -> None:
    s, app = served
    app.disconnected.clear()
    with pytest.raises(ProviderError) as info:
        await request(clients, "GET", s.url + path, headers={}, timeouts=FAST, provider="t")
    # The server would hold this request for a minute and then fail it another way: only the
    # client's first-byte deadline (FAST) gives TIMEOUT, and then the client hangs up.
    assert info.value.error_class is ErrorClass.TIMEOUT
    assert "first byte" in info.value.message
    await _wait_disconnect(app)


async def test_stall_between_chunks(served: tuple[ServedApp, Behaviours], clients: UpstreamClients) -> None:
    s, _ = served
    got: list[bytes] = []
    with pytest.raises(ProviderError) as info:
        async with open_stream(
            clients, "GET", s.url + "/stall", headers={}, timeouts=FAST, provider="t"
        ) as st:
            async for chunk in st.chunks():
                got.append(chunk)
    assert got == [b"first"]
    assert info.value.error_class is ErrorClass.TIMEOUT
    assert "between chunks" in info.value.message


async def test_steady_drip_is_not_a_stall(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, _ = served
    timeouts = Timeouts(connect=1, first_byte=1, between_chunks=0.5)
    reply = await request(clients, "GET", s.url + "/drip", headers={}, timeouts=timeouts, provider="t")
    assert reply.body == b"....."


async def test_connection_refused_is_network(clients: UpstreamClients) -> None:
    with pytest.raises(ProviderError) as info:
        await request(
            clients, "GET", f"http://127.0.0.1:{free_port()}/", headers={}, timeouts=FAST, provider="t"
        )
    assert info.value.error_class is ErrorClass.NETWORK
    assert not info.value.closed_before_reply  # no connection was open: no retry at once


async def test_dropped_connection_mid_body_is_network(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, _ = served
    with pytest.raises(ProviderError) as info:
        await request(clients, "GET", s.url + "/abort", headers={}, timeouts=FAST, provider="t")
    assert info.value.error_class is ErrorClass.NETWORK
    assert not info.value.closed_before_reply  # the reply had begun


async def _wait_disconnect(app: Behaviours) -> None:
    assert await asyncio.to_thread(app.disconnected.wait, HANG_GUARD), "upstream never saw the disconnect"


async def test_cancelling_the_consumer_closes_upstream_promptly(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, app = served
    app.disconnected.clear()
    first = asyncio.Event()

    async def consume() -> None:
        async with open_stream(
            clients, "GET", s.url + "/stall", headers={}, timeouts=PATIENT, provider="t"
        ) as st:
            async for _ in st.chunks():
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    assert not app.disconnected.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_disconnect(app)


async def test_closing_the_generator_closes_upstream_promptly(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, app = served
    app.disconnected.clear()

    async def chunks() -> Any:
        async with open_stream(
            clients, "GET", s.url + "/stall", headers={}, timeouts=PATIENT, provider="t"
        ) as st:
            async for chunk in st.chunks():
                yield chunk

    gen = chunks()
    assert await gen.__anext__() == b"first"
    assert not app.disconnected.is_set()
    await gen.aclose()
    await _wait_disconnect(app)


async def test_mock_transport_factory() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        return httpx.Response(200, content=b"{}")

    async with UpstreamClients(transport_factory=lambda: httpx.MockTransport(handler)) as pool:
        reply = await request(
            pool, "GET", "https://example.test/v1/x", headers={}, timeouts=FAST, provider="t"
        )
    assert reply.json() == {}
    assert seen == ["https://example.test/v1/x"]


@pytest.mark.parametrize(
    "field,value",
    [("connect", 0), ("first_byte", -1), ("between_chunks", float("inf")), ("write", float("nan"))],
)
def test_timeouts_are_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Timeouts(**{field: value})


NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({}, None),
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "Wed, 25 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 25 Nov 2026 11:59:00 GMT"}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=lambda: NOW) == expected


def test_redact_removes_header_secrets_and_key_shapes() -> None:
    headers = {
        "Authorization": "Bearer sk-test-CANARY-123456",
        "x-goog-api-key": "AIzaSyA-abcdefghijklmnopqrstu",
    }
    secrets = secrets_in(headers)
    text = "Incorrect API key provided: sk-test-CANARY-123456. Also sk-proj-****3456 and AIzaSyA-abcdefghijklmnopqrstu"
    cleaned = redact(text, secrets)
    assert "CANARY" not in cleaned
    assert "AIza" not in cleaned
    assert "sk-proj" not in cleaned
    assert cleaned.startswith("Incorrect API key provided: [redacted]")
    assert redact("no secrets here", secrets) == "no secrets here"


async def test_cancelling_while_waiting_for_headers_hangs_up_promptly(
    served: tuple[ServedApp, Behaviours], clients: UpstreamClients
) -> None:
    s, app = served
    app.disconnected.clear()
    app.received.clear()
    task = asyncio.create_task(
        request(clients, "GET", s.url + "/slow-headers", headers={}, timeouts=PATIENT, provider="t")
    )
    assert await asyncio.to_thread(app.received.wait, HANG_GUARD)
    assert not app.disconnected.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_disconnect(app)


def test_transport_and_session_factories_are_exclusive() -> None:
    with pytest.raises(ValueError):
        UpstreamClients(
            transport_factory=lambda: httpx.MockTransport(lambda r: httpx.Response(200)),
            session_factory=lambda: None,  # type: ignore[arg-type,return-value]
        )
    assert (
        UpstreamClients(transport_factory=lambda: httpx.MockTransport(lambda r: httpx.Response(200))).backend
        == "httpx"
    )
