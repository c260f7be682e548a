"""Serve any ASGI app on a real loopback socket, in a background thread.

Emulators are plain ASGI apps; this harness gives them a port. Running the server on its
own thread and event loop keeps it independent of the test's loop, so a test can block,
cancel or time things without the emulator noticing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import uvicorn


class _SignallingServer(uvicorn.Server):
    """A uvicorn server that tells another thread the moment it is listening."""

    def __init__(self, config: uvicorn.Config, started: threading.Event) -> None:
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._started_event.set()


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    """An ASGI request's whole body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class EndlessBody:
    """An ASGI endpoint whose 200 reply never ends: `head`, then `piece` `writes` times (more than
    any bound lets a client read), then it waits for the client to hang up (`hung_up`)."""

    def __init__(self, content_type: bytes, piece: bytes, writes: int, head: bytes = b"") -> None:
        self.content_type, self.piece, self.writes, self.head = content_type, piece, writes, head
        self.hung_up = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body(receive)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", self.content_type)]}
        )
        await send({"type": "http.response.body", "body": self.head, "more_body": True})
        for _ in range(self.writes):
            await send({"type": "http.response.body", "body": self.piece, "more_body": True})
        if (await receive())["type"] == "http.disconnect":
            self.hung_up.set()


_FIRST_PORT, _SLICE, _SLICES = 20_000, 1_000, 12


def _own_ports() -> Iterator[int]:
    """Ports for this process to hand out, forever: a slice of its own per pytest-xdist worker
    (`gw0` to `gw11`), below the kernel's ephemeral range, from which `bind(0)` and every
    outgoing connection draw theirs. Empty when that range starts too low to leave room."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 0
    if ephemeral < _FIRST_PORT + _SLICE * _SLICES:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = _FIRST_PORT + (int(worker) % _SLICES if worker.isdigit() else 0) * _SLICE
    yield from itertools.cycle(range(first, first + _SLICE))


_ports, _ports_lock = _own_ports(), threading.Lock()


def free_port() -> int:
    """A port free at this moment, for a server in another process or an address where nothing
    should answer. It comes from this test worker's own slice, so another worker cannot pick it
    too, nor the kernel give it to an outgoing connection, before the server binds it. A server
    in this process binds its socket at once instead (`bound_socket`)."""
    with _ports_lock:
        for port in itertools.islice(_ports, _SLICE):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue  # listening, or just closed and not yet released: the next one
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: a free port the kernel picks), for uvicorn's
    `serve(sockets=...)`: the port is held from the moment it is chosen."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class ServedApp:
    """`with ServedApp(app) as served: served.url`; stops the server on exit."""

    def __init__(
        self, app: Callable[..., Any], *, port: int | None = None, ws: str = "websockets-sansio"
    ) -> None:
        self.app = app
        self._socket = bound_socket(port=port or 0)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws=ws,
            access_log=False,
        )
        self._started = threading.Event()
        self._server = _SignallingServer(config, self._started)
        self._thread = threading.Thread(target=self._run, name=f"emulator:{self.port}", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
        finally:
            self._socket.close()
            # Wakes `start` when serving ended before it began (e.g. the port was taken).
            self._started.set()

    def start(self) -> ServedApp:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("emulator did not start within 10 s")
        if self._error is not None or not self._server.started:
            raise RuntimeError("emulator failed to start") from self._error
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()  # when it never started

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServedGroup:
    """Several emulators served together: `with Group() as g:` starts them all, exit stops them.

    A subclass builds its emulators, then calls `super().__init__(app, ...)`; `served[i].url`
    is where the i-th app listens.
    """

    def __init__(self, *apps: Callable[..., Any]) -> None:
        self.served = [ServedApp(app) for app in apps]

    def __enter__(self) -> Self:
        for served in self.served:
            served.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for served in self.served:
            served.stop()
