"""The ASGI layer that opens a request-log entry for each logged `/v1` request.

Pure ASGI, the innermost layer both of the hot endpoints' chain (`server.hot_path`) and of the
app's middleware (for the audio routes), so every logged request runs with its entry as the
current one (`server.activity.recorder`). It reads the response status from
`http.response.start` and whether the body ran to its end (the two hot endpoints note both
themselves: `SELF_REPORTING`), and when the request is over hands the entry to the writer (kept
only if a valid key named an org). Every other path passes straight through after one dictionary
lookup.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.activity.recorder import close_entry, open_entry

SURFACES: dict[str, str] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/messages": "messages",
    "/v1/audio/transcriptions": "audio.transcriptions",
    "/v1/audio/speech": "audio.speech",
}
"""The POST paths logged, and the surface each is logged as (realtime logs itself)."""

SELF_REPORTING = frozenset({"/v1/chat/completions", "/v1/messages"})
"""Endpoints that note their response's status and end on the entry themselves
(`server.v1.asgi`: `note_response`, `note_completed`), so their messages are not watched: a
watcher is one more call per frame of a long event stream."""


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        surface = SURFACES.get(scope["path"]) if scope["type"] == "http" else None
        if surface is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        log = scope["app"].state.services.gateway.request_log
        opened = open_entry(log, surface)
        if opened is None:
            await self.app(scope, receive, send)
            return
        entry, token = opened

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif not message.get("more_body", False):
                entry.completed = True
            await send(message)

        try:
            await self.app(scope, receive, send if scope["path"] in SELF_REPORTING else logged_send)
        except Exception:
            if entry.status == 0:
                entry.status, entry.error_code = 500, "server_error"
            raise
        finally:
            close_entry(log, entry, token)
