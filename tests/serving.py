"""Serving an ASGI app on loopback inside the test's own event loop (uvicorn as a task)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn


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
