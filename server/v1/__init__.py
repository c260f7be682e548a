"""The routed public API: OpenAI Chat Completions and Anthropic Messages over Patchbay routing."""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.v1.asgi import Endpoint
from server.v1.chat import chat_completions
from server.v1.messages import messages
from server.v1.models import list_models, retrieve_model

ROUTES = [
    Route("/v1/chat/completions", Endpoint(chat_completions), methods=["POST"]),
    Route("/v1/messages", Endpoint(messages), methods=["POST"]),
    Route("/v1/models", Endpoint(list_models), methods=["GET"]),
    Route("/v1/models/{model:path}", Endpoint(retrieve_model), methods=["GET"]),
]
"""Plain ASGI endpoints (see server/v1/asgi.py); the app factory appends them to its router."""


class V1FastPath:
    """Pure ASGI middleware that hands the two hot POST endpoints their requests directly.

    Installed inside `RequestIdMiddleware` (so requests keep their id and access-log line) and
    inside Starlette's `ServerErrorMiddleware` (so a bug is still a logged 500), it skips the
    exception middleware, the exit-stack middleware and route matching over every admin route:
    about a tenth of the gateway's per-request CPU in bench/gateway.py. The endpoints handle
    their own errors, so nothing those layers do is lost. The same endpoints stay in `ROUTES`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/v1/chat/completions":
                await chat_completions(scope, receive, send)
                return
            if path == "/v1/messages":
                await messages(scope, receive, send)
                return
        await self.app(scope, receive, send)
