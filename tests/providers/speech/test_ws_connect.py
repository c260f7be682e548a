"""`open_socket` over real loopback TLS: the shared TLS context, and no proxy from the environment."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.ws_connect import open_socket
from providers.upstream_pool import tls_context
from routing.errors import BaseUrlRefusedError
from routing.guard import GuardPolicy, checked_resolver
from tests.emulators.tls import self_signed_certificate


@pytest.fixture
def trusted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A certificate the shared TLS context (and only it) trusts, for this test."""
    cert, key = self_signed_certificate(tmp_path, names=["speech.test"])
    tls_context.cache_clear()
    tls_context().load_verify_locations(cafile=str(cert))
    yield cert, key
    tls_context.cache_clear()


connections: list[str] = []


def count(ws: ServerConnection, request: Request) -> None:
    connections.append(request.headers.get("host", ""))


@pytest.fixture
async def wss(trusted: tuple[Path, Path]) -> AsyncIterator[str]:
    cert, key = trusted
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    connections.clear()
    async with serve(echo, "127.0.0.1", 0, ssl=context, process_request=count) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"wss://127.0.0.1:{port}/v1/speech"


async def test_a_wss_socket_uses_the_shared_tls_context_and_no_proxy(
    wss: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both would send the connection elsewhere: a proxy that does not exist, and asyncio's own
    # context (the system's CA store, which does not hold this test's certificate).
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    ws = await open_socket(wss, {"xi-api-key": "k"}, provider="elevenlabs:a", open_within=10)
    try:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    finally:
        await ws.close()


async def test_a_certificate_the_shared_context_does_not_trust_is_a_network_error(wss: str) -> None:
    tls_context.cache_clear()  # a fresh context: certifi's authorities only
    with pytest.raises(ProviderError) as info:
        await open_socket(wss, {}, provider="elevenlabs:a", open_within=10)
    assert info.value.error_class is ErrorClass.NETWORK


async def test_with_the_guards_resolver_the_socket_connects_to_the_address_it_checked(wss: str) -> None:
    # speech.test resolves nowhere but in the injected answer: being served proves the socket
    # went to the checked address, not to a second lookup (which DNS could answer differently).
    asked: list[tuple[str, int]] = []

    async def dns(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"] if host == "speech.test" else []

    port = int(wss.rsplit(":", 1)[1].split("/")[0])
    url = wss.replace("127.0.0.1", "speech.test")
    allowed = checked_resolver(GuardPolicy(allow_private=True), dns)
    ws = await open_socket(url, {}, provider="elevenlabs:a", open_within=10, resolve=allowed)
    try:
        await ws.send("hi")
        assert await ws.recv() == "hi"
    finally:
        await ws.close()
    assert asked == [("speech.test", port)]
    assert connections == [f"speech.test:{port}"]  # the name stays the upgrade's Host (and TLS's)

    # The default policy refuses a loopback answer: nothing is connected.
    with pytest.raises(BaseUrlRefusedError, match="speech.test resolves to loopback address 127.0.0.1"):
        await open_socket(
            url, {}, provider="elevenlabs:a", open_within=10, resolve=checked_resolver(GuardPolicy(), dns)
        )
    assert len(connections) == 1
