"""Opening a speech provider's WebSocket, with failures as the `ProviderError`s fallback reads.

`open_socket` connects with the `websockets` asyncio client (the server's own event loop, a
local emulator's `ws://` as well as `wss://`), the key in the upgrade request's headers. A
refused upgrade is classified like the provider's HTTP answers (`providers.speech.errors`:
status, body, `detail.status` code), a slow one is a TIMEOUT, an unreachable host a NETWORK
error; the library's exception (whose text may hold the URL or a header) is never chained.
The connection's own logging is silenced: `websockets` logs the upgrade headers (the key)
and every frame (a caller's words, a reply's text) at DEBUG.

As with every upstream call (`providers.http`), no proxy is taken from the environment, and
`wss://` uses the one shared TLS context: left to itself, asyncio would build a new context
for each connection, loading the system's CA store (about 50 ms of CPU on the event loop,
the length of two voice frames, at every speech socket opened).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.http import secrets_in, tls_context
from providers.speech.errors import elevenlabs_error

SILENT = logging.Logger("speech_ws.silent", level=logging.CRITICAL + 1)


async def open_socket(
    url: str, headers: Mapping[str, str], *, provider: str, open_within: float, max_size: int = 2**22
) -> ClientConnection:
    failure: ProviderError | None = None
    tls: dict[str, Any] = {"ssl": tls_context()} if url.startswith("wss:") else {}
    try:
        return await connect(
            url,
            additional_headers=dict(headers),
            open_timeout=open_within,
            compression=None,
            max_size=max_size,
            logger=SILENT,
            proxy=None,
            **tls,
        )
    except InvalidStatus as exc:
        response = exc.response
        failure = elevenlabs_error(
            response.status_code,
            dict(response.headers),
            bytes(response.body or b""),
            provider=provider,
            secrets=secrets_in(headers),
        )
    except TimeoutError:
        failure = ProviderError(ErrorClass.TIMEOUT, "connecting timed out", provider=provider)
    except (OSError, InvalidHandshake, websockets.exceptions.InvalidURI) as exc:
        failure = ProviderError(
            ErrorClass.NETWORK, f"could not connect: {type(exc).__name__}", provider=provider
        )
    raise failure  # outside the handler: the library's exception (and its text) is not chained
