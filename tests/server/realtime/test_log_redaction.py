"""A realtime connect logged at DEBUG leaks neither the API key nor the browser token.

The server runs as `patchbay serve` runs it (the websockets protocol it picks, our logging
configuration, no uvicorn log config), with everything at DEBUG so the handshake headers are
logged. Both what reaches the JSON output and every captured record (message, arguments,
`fields`) are searched for the canaries.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from server import redact
from server.app import create_app
from server.db import Database
from server.logs import configure_logging
from server.realtime.runtime import EnginesFactory
from server.serve import WEBSOCKET_PROTOCOL
from server.services import Overrides, Services
from server.settings import Settings
from tests.emulators.openai import OpenAIEmulator
from tests.server.realtime.conftest import _seed
from tests.serving import uvicorn_in_loop


@pytest.fixture
def output(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Our logging configuration at DEBUG into a buffer, with pytest's capture kept on; undone after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    touched = [logging.getLogger(n) for n in (*redact.LIBRARY_LOGGERS, "httpx", "alembic.runtime.migration")]
    levels = [(lg, lg.level, list(lg.filters), list(lg.handlers), lg.propagate) for lg in touched]
    buffer = io.StringIO()
    configure_logging("DEBUG", buffer)
    root.addHandler(caplog.handler)
    for lg in touched:
        lg.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for lg, level, filters, handlers, propagate in levels:
            lg.setLevel(level)
            lg.filters[:] = filters
            lg.handlers[:] = handlers
            lg.propagate = propagate


@pytest.fixture
async def server(
    output: io.StringIO,
    settings: Settings,
    db: Database,
    llm_served: tuple[OpenAIEmulator, str],
    engines: EnginesFactory | None,
) -> AsyncIterator[tuple[str, str]]:
    services = Services.build(settings, db, Overrides(voice_engines=engines))
    _, key = await _seed(services, llm_served[1])
    config = uvicorn.Config(
        create_app(settings, services=services),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        ws=WEBSOCKET_PROTOCOL,
        log_config=None,
        log_level=None,
        access_log=False,
    )
    async with uvicorn_in_loop(config):
        yield f"127.0.0.1:{config.port}", key


def record_text(record: logging.LogRecord) -> str:
    args: Any = record.args
    return " ".join(map(str, (record.msg, args, getattr(record, "fields", None), record.getMessage())))


async def test_keys_and_tokens_never_reach_the_logs(
    server: tuple[str, str], output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    address, key = server
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        minted = await http.post(
            "/v1/realtime/client_secrets",
            headers={"authorization": f"Bearer {key}"},
            json={"session": {"type": "realtime"}},
        )
    token = minted.json()["value"]
    for query, headers in (
        (f"model=default&token={token}", {}),
        ("model=default", {"authorization": f"Bearer {key}"}),
    ):
        async with websockets.connect(
            f"ws://{address}/v1/realtime?{query}", additional_headers=headers
        ) as ws:
            assert '"session.created"' in str(await asyncio.wait_for(ws.recv(), 10))

    records = "\n".join(record_text(r) for r in caplog.records)
    assert "authorization" in records.lower() and "/v1/realtime?" in records, "the handshake was not logged"
    for canary in (key, key.removeprefix("pb-"), token, token.removeprefix("ek_")):
        assert canary not in records
        assert canary not in output.getvalue()
    assert f"token={redact.MARKER}" in records
    assert any(
        r.args == ("authorization", redact.MARKER) for r in caplog.records if r.name == "uvicorn.error"
    )
    assert redact.MARKER in output.getvalue()
