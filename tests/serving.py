"""Serving an ASGI app on loopback inside the test's own event loop (uvicorn as a task)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from server.serve import WEBSOCKET_PROTOCOL


def loopback_config(app: Any, port: int, *, ws: Any = WEBSOCKET_PROTOCOL) -> uvicorn.Config:
    """A Patchbay app on 127.0.0.1:`port` with its lifespan, quiet, on `patchbay serve`'s
    WebSocket protocol unless `ws` names another."""
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        ws=ws,
    )


@contextlib.asynccontextmanager
async def uvicorn_in_loop(config: uvicorn.Config) -> AsyncIterator[uvicorn.Server]:
    """The server started (or a failure to start raised), stopped and awaited on the way out."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)  # start-up poll, bounded; no test logic depends on timing
    assert server.started, "the server did not start"
    try:
        yield server
    finally:
        server.should_exit = True
        await task
