"""The routed public API: OpenAI Chat Completions and Anthropic Messages over Patchbay routing."""

from __future__ import annotations

from starlette.routing import Route

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
"""Plain ASGI endpoints (see server/v1/asgi.py); the app factory appends them to its router. The
two POST endpoints are served ahead of the router (`server.hot_path`); their routes answer other methods."""
