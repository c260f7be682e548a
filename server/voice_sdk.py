"""The browser voice client: `server/sdk/*.js` served at `/sdk/` (docs/voice.md, "From a browser").

Plain ES modules, no build step: `patchbay-voice.js` (the realtime WebSocket, barge-in,
events, reconnect), `patchbay-voice-audio.js` (microphone and output graph),
`patchbay-voice-conversation.js` (the conversation kept for a reconnection to replay),
`patchbay-voice-heartbeat.js` (whether the connection still carries anything) and
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

from server.fixed_headers import FixedHeaders

SDK_DIR = Path(__file__).parent / "sdk"

SDK_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/javascript; charset=utf-8"),
    (b"cache-control", b"public, no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"access-control-allow-origin", b"*"),
    (b"cross-origin-resource-policy", b"cross-origin"),
)


def mount_sdk(app: FastAPI) -> None:
    """Serve the browser voice client at `/sdk/`."""
    app.mount(
        "/sdk", FixedHeaders(StaticFiles(directory=SDK_DIR), SDK_HEADERS, statuses=(200, 304)), name="sdk"
    )
