"""The two hot `/v1` POST endpoints, dispatched ahead of FastAPI's middleware stack.

`PatchbayApp` is the FastAPI app with one difference: a POST to `/v1/chat/completions` or
`/v1/messages` goes straight into its own short chain of Patchbay's middleware (request id,
access line, metrics and unhandled errors; body cap; request log) and then to the endpoint.
Everything else, the lifespan included, goes through FastAPI as before.

What the short chain skips does nothing for these two endpoints: FastAPI's telemetry wrapper
(off, see `server.app`) and its body-limit layer (no limit set), Starlette's error middleware
(`RequestIdMiddleware` answers an unhandled error with a 500 that carries the request id), the
admin gate (`/admin/` only), the exception and exit-stack middleware and route matching over
every admin route (the endpoints answer their own errors). Each of those is one more coroutine
per request, and the error middleware one more call per frame of a stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from server.activity.middleware import RequestLogMiddleware
from server.body_limit import BodyLimit
from server.middleware import RequestIdMiddleware
from server.v1.chat import chat_completions
from server.v1.messages import messages

HOT_ENDPOINTS: dict[str, ASGIApp] = {
    "/v1/chat/completions": chat_completions,
    "/v1/messages": messages,
}
"""POST paths served by the short chain, and their endpoint (the same endpoints are also in
`server.v1.ROUTES`, for the router's 405 on another method)."""


async def _dispatch(scope: Scope, receive: Receive, send: Send) -> None:
    await HOT_ENDPOINTS[scope["path"]](scope, receive, send)


class PatchbayApp(FastAPI):
    """FastAPI, with `HOT_ENDPOINTS` served through `hot_chain` instead of the middleware stack."""

    def __init__(self, *, default_body_cap: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_chain: ASGIApp = RequestIdMiddleware(
            BodyLimit(RequestLogMiddleware(_dispatch), default_cap=default_body_cap)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in HOT_ENDPOINTS:
            scope["app"] = self
            await self.hot_chain(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
