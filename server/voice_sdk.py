"""The browser voice client: `server/sdk/*.js` served at `/sdk/` (docs/voice.md, "From a browser").

Plain ES modules, no build step: `patchbay-voice.js` (the realtime WebSocket, barge-in,
events, reconnect), `patchbay-voice-audio.js` (microphone and output graph) and
`patchbay-voice-worklet.js` (the AudioWorklet processors: capture with resampling, the jitter
buffer). Apps on other origins import them, so they are served to any origin (CORS `*`,
`cross-origin-resource-policy: cross-origin`; they hold no secret and send no cookie). Each
load revalidates (`no-cache` with the ETag StaticFiles sets), so an upgraded server never runs
a stale module against a newer protocol. These headers are for the scripts only: the pages that
use them set their own policy (a page using the microphone needs `microphone=(self)`); the admin
UI's stays `microphone=()` (server/ui.py).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SDK_DIR = Path(__file__).parent / "sdk"

SDK_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/javascript; charset=utf-8"),
    (b"cache-control", b"public, no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"access-control-allow-origin", b"*"),
    (b"cross-origin-resource-policy", b"cross-origin"),
)


class ScriptHeaders:
    """Pure ASGI wrapper: `SDK_HEADERS` on every successful response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in SDK_HEADERS}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *SDK_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_sdk(app: FastAPI) -> None:
    """Serve the browser voice client at `/sdk/`."""
    app.mount("/sdk", ScriptHeaders(StaticFiles(directory=SDK_DIR)), name="sdk")
