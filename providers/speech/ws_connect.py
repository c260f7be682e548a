"""Opening a speech provider's WebSocket, with failures as the `ProviderError`s fallback reads.

`open_socket` connects with the `websockets` asyncio client (the server's own event loop, a
local emulator's `ws://` as well as `wss://`), the key in the upgrade request's headers. A
refused upgrade is classified like the provider's HTTP answers (`providers.speech.errors`:
status, body, `detail.status` code), a slow one is a TIMEOUT, an unreachable host a NETWORK
error; the library's exception (whose text may hold the URL or a header) is never chained.
The connection's own logging is silenced: `websockets` logs the upgrade headers (the key)
and every frame (a caller's words, a reply's text) at DEBUG.

With `resolve` (the server passes its guard's, `UpstreamClients.resolve_checked`), the host is
resolved and every address checked first, and the socket connects to a checked address, so a
DNS answer cannot change between the check and the connect; TLS still verifies the host name.

As with every upstream call (`providers.upstream_pool`), no proxy is taken from the environment, and
`wss://` uses the one shared TLS context: left to itself, asyncio would build a new context
for each connection, loading the system's CA store (about 50 ms of CPU on the event loop,
the length of two voice frames, at every speech socket opened).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.redaction import secrets_in
from providers.speech.errors import elevenlabs_error
from providers.upstream_pool import CheckedResolve, tls_context

SILENT = logging.Logger("speech_ws.silent", level=logging.CRITICAL + 1)


async def open_socket(
    url: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    open_within: float,
    max_size: int = 2**22,
    resolve: CheckedResolve | None = None,
) -> ClientConnection:
    failure: ProviderError | None = None
    options: dict[str, Any] = {"ssl": tls_context()} if url.startswith("wss:") else {}
    try:
        if resolve is not None:
            # The guard's refusal (or a host that does not resolve) propagates as it is.
            options.update(await _checked_address(url, resolve, open_within))
        return await connect(
            url,
            additional_headers=dict(headers),
            open_timeout=open_within,
            compression=None,
            max_size=max_size,
            logger=SILENT,
            proxy=None,
            **options,
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


async def _checked_address(url: str, resolve: CheckedResolve, within: float) -> dict[str, Any]:
    """`host` and `port` for the connection: the first address `resolve` allows (the URL's host
    name stays the TLS server name and the upgrade's Host)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    async with asyncio.timeout(within):
        addresses = await resolve(host, port)
    return {"host": addresses[0], "port": port}
