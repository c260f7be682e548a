"""The header deadline: slow or silent connections are closed, complete requests are served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from server.header_timeout import header_timeout_protocol
from tests.serving import uvicorn_in_loop


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    config = uvicorn.Config(
        hello,
        host="127.0.0.1",
        port=0,
        http=header_timeout_protocol(0.2),
        timeout_keep_alive=60,  # so only the header deadline can close the sockets below
        log_level="warning",
        lifespan="off",
    )
    async with uvicorn_in_loop(config):
        yield config.port


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(30):  # a hang guard only: the server closes long before
        return await reader.read(1024) == b""


async def test_a_connection_that_never_finishes_its_headers_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    assert await closed_by_server(reader)
    writer.close()


async def test_a_silent_connection_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await closed_by_server(reader)
    writer.close()


async def test_complete_requests_are_served_and_the_next_one_gets_its_own_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(30):
            response = await reader.readuntil(b"ok")
        assert response.startswith(b"HTTP/1.1 200")
    writer.write(b"GET / HTTP/1.1\r\n")
    await writer.drain()
    assert await closed_by_server(reader)
    writer.close()
