"""Patchbay's own HTTP/1.1 client against a scripted server on loopback: what it writes, how it
frames and decodes replies, when it keeps a connection, and how each failure is reported.

The server is a plain asyncio server in the test's loop that records every request it reads and
answers each with the next scripted reply, byte for byte, so a test controls the exact framing
(chunked, by length, to the end of the connection, malformed) that a real server might send.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop
from prometheus_client import REGISTRY

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.h1 import H1Client
from providers.h1_connection import MAX_HEAD_BYTES, READ_PAUSE_BYTES, Connection, H1Error
from providers.http import Timeouts, open_stream, request
from providers.upstream_pool import UpstreamClients
from routing.errors import BaseUrlRefusedError
from tests.emulators.tls import self_signed_certificate

FAST = Timeouts(connect=2, first_byte=2, between_chunks=2)

Reply = bytes | Callable[[asyncio.StreamWriter], object]
"""Bytes written as they are, or a callable that does what it likes with the connection."""


def reply(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


def chunked(*parts: bytes) -> bytes:
    framed = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


class Scripted:
    """Answers requests, on any connection, with `replies` in order; records what it read."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.replies.pop(0)
                if callable(answer):
                    answer(writer)
                else:
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(script: Scripted, tls: ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=tls)
    script.port = server.sockets[0].getsockname()[1]
    async with server:
        yield script


async def get(
    clients: UpstreamClients, script: Scripted, path: str = "/v1/x", headers: Mapping[str, str] | None = None
) -> bytes:
    url = f"http://127.0.0.1:{script.port}{path}"
    answer = await request(
        clients, "POST", url, headers=headers or {}, body=b"{}", timeouts=FAST, provider="t"
    )
    return answer.body


async def test_the_request_carries_host_length_agent_and_encodings_and_the_callers_headers() -> None:
    async with serving(Scripted(reply(b"ok"))) as script, UpstreamClients() as clients:
        assert await get(clients, script, "/v1/chat?alt=sse", headers={"Authorization": "Bearer k"}) == b"ok"
    lines = script.requests[0].split(b"\r\n")
    assert lines[0] == b"POST /v1/chat?alt=sse HTTP/1.1"
    assert {b"host: 127.0.0.1:%d" % script.port, b"Authorization: Bearer k", b"content-length: 2"} <= set(
        lines
    )
    assert {b"user-agent: patchbay/0.1", b"accept-encoding: gzip"} <= set(lines)
    assert script.requests[0].endswith(b"\r\n\r\n{}")


async def test_framing_the_caller_sets_is_written_once_by_the_client() -> None:
    async with serving(Scripted(reply(b"ok"))) as script, UpstreamClients() as clients:
        await get(clients, script, headers={"Host": "evil", "Content-Length": "99", "Connection": "close"})
    head = script.requests[0].lower()
    assert head.count(b"host:") == 1 and b"evil" not in head
    assert head.count(b"content-length:") == 1 and b"connection:" not in head


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "one\r\nx-injected: two"}, {"x-a\r\nx-b": "v"}, {"bad name": "v"}, {"x-a": "nul\x00"}],
)
async def test_a_header_that_would_split_the_request_is_refused_before_anything_is_sent(
    headers: dict[str, str],
) -> None:
    async with serving(Scripted(reply(b"ok"))) as script, UpstreamClients() as clients:
        with pytest.raises(ValueError, match="header"):
            await get(clients, script, headers=headers)
    assert script.requests == []


async def test_a_target_with_spaces_or_non_ascii_is_percent_encoded() -> None:
    async with serving(Scripted(reply(b"ok"))) as script, UpstreamClients() as clients:
        await get(clients, script, "/v1/models/a b/é?q=x y")
    assert script.requests[0].startswith(b"POST /v1/models/a%20b/%C3%A9?q=x%20y HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "answer",
    [
        chunked(b"hel", b"lo"),
        reply(gzip.compress(b"hello"), "content-encoding: gzip"),
        reply(zlib.compress(b"hello"), "content-encoding: deflate"),
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello",  # delimited by the connection's end
    ],
    ids=["chunked", "gzip", "deflate", "until-close"],
)
async def test_each_framing_and_encoding_reads_the_same_body(answer: bytes) -> None:
    def close_after(writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        if b"connection: close" in answer:
            writer.close()

    async with serving(Scripted(close_after)) as script, UpstreamClients() as clients:
        assert await get(clients, script) == b"hello"


async def test_an_informational_reply_before_the_real_one_is_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    async with (
        serving(Scripted(early + reply(b"real", "x-final: yes"))) as script,
        UpstreamClients() as clients,
    ):
        url = f"http://127.0.0.1:{script.port}/"
        answer = await request(clients, "GET", url, headers={}, timeouts=FAST, provider="t")
    assert (answer.status, answer.body, answer.headers.get("X-Final"), answer.headers.get("link")) == (
        200,
        b"real",
        "yes",
        None,
    )


def connections_opened() -> float:
    return REGISTRY.get_sample_value("patchbay_upstream_connections_opened_total") or 0.0


async def test_a_connection_is_kept_between_calls_and_dropped_once_told_to_close() -> None:
    replies = [reply(b"1"), reply(b"2", "connection: close"), reply(b"3")]
    before = connections_opened()
    async with serving(Scripted(*replies)) as script, UpstreamClients() as clients:
        bodies = [await get(clients, script) for _ in range(3)]
    assert bodies == [b"1", b"2", b"3"]
    assert script.connections == 2
    assert connections_opened() - before == 2  # what /metrics reports, for the reuse alert


async def test_a_kept_connection_past_its_keepalive_is_not_reused() -> None:
    async with serving(Scripted(reply(b"1"), reply(b"2"))) as script:
        client = H1Client(f"http://127.0.0.1:{script.port}", tls=ssl.create_default_context(), keepalive=1e-9)
        try:
            for _ in range(2):
                connection = await client.send("GET", f"http://127.0.0.1:{script.port}/", {}, None, 2)
                assert await connection.read() is not None and await connection.read() is None
                connection.release()
        finally:
            await client.aclose()
    assert script.connections == 2


async def test_a_kept_connection_the_server_closed_fails_as_closed_before_reply() -> None:
    # The runner retries such a call once: the request may never have reached the upstream.
    def take_and_hang_up(writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with serving(Scripted(reply(b"1"), take_and_hang_up)) as script, UpstreamClients() as clients:
        assert await get(clients, script) == b"1"
        with pytest.raises(ProviderError) as caught:
            await get(clients, script)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert caught.value.closed_before_reply
    assert "server closed the connection" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", "server closed the connection"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed reply"),
        (reply(b"x", "content-encoding: br"), "unsupported content-encoding 'br'"),
        (reply(b"not gzip", "content-encoding: gzip"), "undecodable compressed reply"),
        (b"HTTP/1.1 200 OK\r\nx-endless: " + b"a" * (MAX_HEAD_BYTES + 1), "reply headers longer than 64 KiB"),
    ],
    ids=["cut-short", "malformed", "unknown-encoding", "bad-gzip", "endless-headers"],
)
async def test_a_broken_reply_is_a_network_error_that_names_the_failure(answer: bytes, message: str) -> None:
    def answer_and_close(writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        writer.close()

    async with serving(Scripted(answer_and_close)) as script, UpstreamClients() as clients:
        with pytest.raises(ProviderError) as caught:
            await get(clients, script)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert message in str(caught.value)
    assert not caught.value.closed_before_reply


async def test_a_refused_connection_names_the_os_error() -> None:
    async with serving(Scripted()) as script:
        port = script.port
    async with UpstreamClients() as clients:
        with pytest.raises(ProviderError, match=r"ConnectionRefusedError") as caught:
            await request(
                clients, "GET", f"http://127.0.0.1:{port}/", headers={}, timeouts=FAST, provider="t"
            )
    assert caught.value.error_class is ErrorClass.NETWORK and not caught.value.closed_before_reply


async def test_a_large_body_arrives_whole_while_the_reader_lags() -> None:
    # Past 256 KiB unread, the client stops reading the socket until the caller catches up.
    body = bytes(range(256)) * 8192  # 2 MiB
    async with serving(Scripted(reply(body))) as script, UpstreamClients() as clients:
        url = f"http://127.0.0.1:{script.port}/"
        async with open_stream(clients, "GET", url, headers={}, timeouts=FAST, provider="t") as stream:
            received = bytearray()
            async for chunk in stream.chunks():
                received += chunk
                await asyncio.sleep(0)  # a slow consumer: the server keeps writing meanwhile
    assert bytes(received) == body


async def test_tls_verifies_the_origins_name_and_refuses_another(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path, names=["upstream.test"])
    served_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with serving(Scripted(reply(b"secure"), reply(b"never")), served_tls) as script:
        good = H1Client(f"https://upstream.test:{script.port}", tls=trusting, resolve=loopback)
        wrong = H1Client(f"https://other.test:{script.port}", tls=trusting, resolve=loopback)
        try:
            connection = await good.send("GET", f"https://upstream.test:{script.port}/", {}, None, 2)
            assert await connection.read() == b"secure"
            connection.release()
            with pytest.raises(H1Error, match="SSLCertVerificationError"):
                await wrong.send("GET", f"https://other.test:{script.port}/", {}, None, 2)
        finally:
            await good.aclose()
            await wrong.aclose()
    assert script.requests[0].split(b"\r\n")[1] == b"host: upstream.test:%d" % script.port


def test_the_path_runs_on_uvloop_as_the_server_does() -> None:
    # uvloop's transports are not asyncio.Transport subclasses; the server's workers run on it.
    async def scenario() -> tuple[bytes, bytes, int]:
        async with (
            serving(Scripted(chunked(b"a", b"b"), reply(b"c"))) as script,
            UpstreamClients() as clients,
        ):
            return await get(clients, script), await get(clients, script), script.connections

    assert uvloop.run(scenario()) == (b"ab", b"c", 1)


class RecordingTransport:
    """Stands in for a socket's transport: records what the connection asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.written += b"".join(parts)

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return "close" in self.calls

    def close(self) -> None:
        self.calls.append("close")


class KeepingPool:
    def __init__(self) -> None:
        self.kept: list[Connection] = []

    def keep(self, connection: Connection) -> None:
        self.kept.append(connection)

    def forget(self, connection: Connection) -> None:
        return None


async def test_a_reply_that_ends_with_a_backlog_unread_is_kept_reading_again() -> None:
    # Past READ_PAUSE_BYTES unread the socket is paused; a reply complete by then, released
    # without its body read, must resume the socket, or the next reply on it would never arrive.
    pool, transport = KeepingPool(), RecordingTransport()
    connection = Connection(pool)
    connection.connection_made(transport)  # type: ignore[arg-type]
    sending = asyncio.ensure_future(connection.send(b"GET / HTTP/1.1\r\n\r\n", None))
    # Callbacks run in the order scheduled: the task writes its request first, then the reply lands.
    asyncio.get_running_loop().call_soon(connection.data_received, reply(b"x" * (READ_PAUSE_BYTES + 1)))
    await sending
    assert (connection.done, transport.calls) == (True, ["pause"])
    connection.release()
    assert (pool.kept, transport.calls) == ([connection], ["pause", "resume"])


async def test_new_connections_share_one_checked_lookup_and_a_refusal_is_not_kept() -> None:
    lookups: list[str] = []
    refuse = True

    async def checked(host: str, port: int) -> list[str]:
        lookups.append(host)
        if refuse:
            raise BaseUrlRefusedError("private", f"{host} refused")
        return ["127.0.0.1"]

    async with serving(Scripted(*[reply(b"ok")] * 6)) as script:
        url = f"http://upstream.test:{script.port}/"
        client = H1Client(
            f"http://upstream.test:{script.port}", tls=ssl.create_default_context(), resolve=checked
        )
        try:
            for _ in range(2):  # refused each time: the refusal is looked up again, not remembered
                with pytest.raises(BaseUrlRefusedError):
                    await client.send("GET", url, {}, None, 2)
            refuse = False
            # Five at once on a client with no connection yet: five connections, one lookup.
            connections = await asyncio.gather(*(client.send("GET", url, {}, None, 2) for _ in range(5)))
            for connection in connections:
                assert await connection.read() == b"ok"
                connection.close()
            # A later connection within DNS_SECONDS uses the same answer.
            later = await client.send("GET", url, {}, None, 2)
            later.close()
        finally:
            await client.aclose()
    assert (len(lookups), script.connections) == (3, 6)
