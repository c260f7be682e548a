"""One cap on every HTTP request body, enforced while the body streams in.

`PATCHBAY_MAX_BODY_BYTES` caps every route except the few listed in `ROUTE_CAPS`, which need a
cap of their own (a 25 MB audio upload, inline images in chat; or a small JSON body). A declared
`Content-Length` over the cap is refused before the app runs; a chunked body is counted as it
arrives and refused at the first byte over, so no oversized body is ever held whole.

A body whose declared `Content-Length` is within the cap passes with no wrapper at all: the
server reads exactly that many bytes, so nothing is left to count.

On refusal the middleware answers 413 itself, in the surface's error format, then tells the app
the client went away (`http.disconnect`) and drops whatever the app still sends: the endpoint
gives up its read the way it would for a real disconnect.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import with_request_id
from server.v1.asgi import MAX_BODY as CHAT_MAX_BODY
from server.v1.audio import MAX_AUDIO_BYTES
from server.v1.errors import ApiError

SMALL_JSON = 64 * 1024
ROUTE_CAPS: Mapping[str, int] = MappingProxyType(
    {
        # The file itself is capped at 25 MB by the endpoint; this leaves room for the
        # multipart envelope and the small form fields beside it.
        "/v1/audio/transcriptions": MAX_AUDIO_BYTES + 64 * 1024,
        "/v1/audio/speech": SMALL_JSON,
        "/v1/realtime/client_secrets": SMALL_JSON,
        "/v1/realtime/sessions": SMALL_JSON,
        "/v1/chat/completions": CHAT_MAX_BODY,
        "/v1/messages": CHAT_MAX_BODY,
    }
)


def cap_for(path: str, default: int) -> int:
    return ROUTE_CAPS.get(path, default)


def too_large_body(path: str, cap: int) -> bytes:
    """The 413 body in the format of the surface `path` belongs to."""
    message = f"request body too large (more than {cap} bytes)"
    if path.startswith("/v1/"):
        error = ApiError(413, "invalid_request_error", message, code="request_too_large")
        return error.anthropic_body() if path == "/v1/messages" else error.openai_body()
    return orjson.dumps({"error": with_request_id({"type": "request_too_large", "message": message})})


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over its route's cap, counted as it streams."""

    def __init__(self, app: ASGIApp, *, default_cap: int) -> None:
        self.app = app
        self.default_cap = default_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cap = cap_for(path, self.default_cap)
        declared = None
        chunked = False
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = value
            elif key == b"transfer-encoding":
                chunked = True
        if declared is not None and declared.isdigit():
            if int(declared) > cap:
                await _refuse(send, path, cap)
                return
            if not chunked:
                # The server frames the body by its Content-Length: it cannot exceed the cap,
                # so the app runs unwrapped (no per-message call on a long event stream).
                await self.app(scope, receive, send)
                return

        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    if not started:
                        await _refuse(send, path, cap)
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            # After a refusal, the app's failure is the disconnect it was shown; the 413 went out.
            if not refused:
                raise


async def _refuse(send: Send, path: str, cap: int) -> None:
    body = too_large_body(path, cap)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
