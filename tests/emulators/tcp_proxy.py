"""Loopback TCP stand-ins for a server (Redis) that goes away and comes back, or hangs.

`TcpProxy` forwards to the real server until the test cuts it: `close()` stops listening and cuts every open connection, so the port refuses connections as a
dead server's does; `open()` listens on the same port again; `freeze()` stops forwarding on the
open connections without closing them, as a network that drops the path silently does. It runs on the test's event
loop, so the order of events is the test's own: no sleeps, no threads. `accepted` counts the
connections clients opened through it, which tells a test whether a client tried at all.
`ClosesKeptConnections` answers each connection's first HTTP request only. `SilentServer` accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from tests.emulators.harness import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._gates: set[asyncio.Event] = set()
        """One per open connection, set while it carries bytes (`freeze` clears them)."""

    @classmethod
    def to_url(cls, url: str) -> TcpProxy:
        """A proxy to the host and port of a URL such as `redis://127.0.0.1:6379/0`."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379)

    def url(self, url: str) -> str:
        """`url` (scheme, credentials, path kept) pointed at this proxy."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))

    async def open(self) -> TcpProxy:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        """Refuse new connections and cut the open ones (both sides see a reset)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        pipes, self._pipes = list(self._pipes), set()
        for task in pipes:
            task.cancel()
        for task in pipes:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.wait_closed()

    async def freeze(self) -> int:
        """Stop carrying bytes on every open connection, both ways, without closing it: neither
        end sees a FIN or a reset, only silence. New connections are forwarded as before (the
        frozen ones are cut by `close`). Returns how many connections were frozen."""
        gates, self._gates = self._gates, set()
        for gate in gates:
            gate.clear()
        return len(gates)

    async def __aenter__(self) -> TcpProxy:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        if self._server is None:  # closed while this connection was being set up
            client_writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        gate = asyncio.Event()
        gate.set()
        self._gates.add(gate)
        pipes = (
            self._requests(client_reader, upstream_writer, client_writer, gate),
            _pipe(upstream_reader, client_writer, gate=gate),
        )
        for pipe in pipes:
            task = asyncio.ensure_future(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        gate: asyncio.Event,
    ) -> None:
        """The client's bytes to the upstream (a subclass may cut a connection here)."""
        await _pipe(reader, upstream, gate=gate)


class ClosesKeptConnections(TcpProxy):
    """Forwards the first HTTP request of each connection; when another request comes on a kept
    connection, closes it unanswered (`reset=True`: resets it), as a server does whose idle
    timeout fired as the request went out. `cut` counts the connections closed so."""

    def __init__(self, target_host: str, target_port: int, *, reset: bool = False) -> None:
        super().__init__(target_host, target_port)
        self.reset = reset
        self.cut = 0

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        gate: asyncio.Event,
    ) -> None:
        requests = 0

        def second_request(data: bytes) -> bool:
            nonlocal requests
            # A client writes each request's head in one piece; a body never starts so.
            requests += data.startswith((b"POST ", b"GET "))
            if requests < 2:
                return False
            self.cut += 1
            if self.reset:
                client.transport.abort()
            else:
                client.close()
            return True

        await _pipe(reader, upstream, second_request)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stop: Callable[[bytes], bool] | None = None,
    *,
    gate: asyncio.Event | None = None,
) -> None:
    """Copy until either side closes, or until `stop` says so of a chunk (which is not sent);
    while `gate` is clear, read nothing (what arrives waits in the kernel's buffers)."""
    try:
        while (gate is None or await gate.wait()) and (data := await reader.read(65536)):
            if stop is not None and stop(data):
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


class SilentServer:
    """Accepts connections and never answers: a hung Redis, or a host that swallows packets."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
