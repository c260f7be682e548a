"""Serving an ASGI app on loopback inside the test's own event loop (uvicorn as a task).

The listening socket is bound before uvicorn starts and handed to it, so the port cannot be
taken by another test worker between choosing it and serving on it. A uvicorn that cannot
start calls `sys.exit`; inside a test's event loop that `SystemExit` would escape the loop and
leave pytest's fixture cache broken for every later test on the worker (each then fails with
a bare `AssertionError`), so it is raised here as a `RuntimeError` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from server.serve import WEBSOCKET_PROTOCOL
from tests.emulators.harness import bound_socket


def loopback_config(app: Any, port: int = 0, *, ws: Any = WEBSOCKET_PROTOCOL) -> uvicorn.Config:
    """A Patchbay app on 127.0.0.1 (`port` 0: a free one, see `uvicorn_in_loop`) with its
    lifespan, quiet, on `patchbay serve`'s WebSocket protocol unless `ws` names another."""
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        ws=ws,
    )


async def serve_on(server: uvicorn.Server, sock: socket.socket) -> None:
    """`server.serve` on `sock`, its `sys.exit` on a failed start raised as a `RuntimeError`."""
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn could not start (exit code {exc.code}); its log says why") from None
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def uvicorn_in_loop(config: uvicorn.Config) -> AsyncIterator[uvicorn.Server]:
    """The server started (or a failure to start raised), stopped and awaited on the way out.
    A `config.port` of 0 takes a free port; `config.port` says which once this is entered."""
    sock = bound_socket(config.host, config.port)
    config.port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    task = asyncio.create_task(serve_on(server, sock))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)  # start-up poll, bounded; no test logic depends on timing
    if not server.started:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a failed start raises its reason here
        raise AssertionError("the server did not start within 5 s")
    try:
        yield server
    finally:
        server.should_exit = True
        await task
