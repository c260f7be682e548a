"""The `openai-chat` adapter: OpenAI, OpenRouter, xAI, Mistral, Kimi and private endpoints.

The thin I/O around the pure translation in `openai_translate` and the error mapping in
`openai_errors`. Vendor differences come from `openai_quirks.quirks_for`, never from a
branch here.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson

from providers.adapters.base import SHAPE_ERRORS, ChatAdapter, Endpoint, malformed, vendor_shape
from providers.adapters.openai_errors import classify_error
from providers.adapters.openai_quirks import OpenAIQuirks, quirks_for
from providers.adapters.openai_translate import (
    StreamTranslator,
    build_request,
    events_from_response,
    parse_response,
    tool_id_map,
)
from providers.auth import add_auth_header
from providers.contract import ErrorClass, WireProtocol
from providers.errors import ProviderError
from providers.http import Timeouts, open_stream, parse_json
from providers.http import request as send_request
from providers.redaction import redact, secrets_in
from providers.sse import SSEDecoder
from providers.structured import validate_output
from providers.types import ChatRequest, ChatResponse, FinishReason, StreamEvent, reasoning_origin
from providers.upstream_pool import UpstreamClients

__all__ = [
    "OpenAIChatAdapter",
    "StreamTranslator",
    "build_request",
    "classify_error",
    "parse_response",
]

# `quirks_for` parses the base URL; endpoints are few, requests many.
_quirks = functools.lru_cache(maxsize=1024)(quirks_for)


def chat_url(endpoint: Endpoint) -> str:
    base = (endpoint.base_url or endpoint.preset.base_url).rstrip("/")
    return f"{base}/chat/completions"


def build_headers(endpoint: Endpoint, *, stream: bool) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    headers.update(endpoint.preset.extra_headers)
    headers.update(endpoint.extra_headers)
    add_auth_header(headers, endpoint.preset.auth_style, endpoint.credential, "chat")
    return headers


class OpenAIChatAdapter(ChatAdapter):
    protocol = WireProtocol.OPENAI_CHAT

    def __init__(self, clients: UpstreamClients, timeouts: Timeouts | None = None) -> None:
        self._clients = clients
        self._timeouts = timeouts or Timeouts()

    def _prepare(self, req: ChatRequest, endpoint: Endpoint, *, stream: bool) -> tuple[OpenAIQuirks, bytes]:
        quirks = _quirks(endpoint.preset.id, endpoint.base_url or endpoint.preset.base_url)
        body = build_request(req, quirks, stream=stream, origin=_origin(endpoint))
        return quirks, orjson.dumps(body)

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> ChatResponse:
        provider = endpoint.preset.id.value
        quirks, body = self._prepare(request, endpoint, stream=False)
        headers = build_headers(endpoint, stream=False)
        try:
            reply = await send_request(
                self._clients,
                "POST",
                chat_url(endpoint),
                headers=headers,
                body=body,
                timeouts=self._timeouts,
                provider=provider,
            )
            data = reply.json()
            if not 200 <= reply.status < 300:
                raise classify_error(
                    reply.status,
                    data if data is not None else reply.body,
                    reply.headers,
                    provider,
                    secrets=secrets_in(headers),
                )
            response = _parse_body(data, request, quirks, endpoint)
        except ProviderError as exc:
            raise _finalize(exc, request.model, secrets_in(headers)) from None
        return response

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
        provider = endpoint.preset.id.value
        quirks, body = self._prepare(request, endpoint, stream=True)
        headers = build_headers(endpoint, stream=True)
        translator = StreamTranslator(
            provider=provider, id_map=tool_id_map(request, quirks), origin=_origin(endpoint)
        )
        decoder = SSEDecoder(provider=provider)
        try:
            async with open_stream(
                self._clients,
                "POST",
                chat_url(endpoint),
                headers=headers,
                body=body,
                timeouts=self._timeouts,
                provider=provider,
            ) as upstream:
                if not 200 <= upstream.status < 300 or _is_json(upstream.headers):
                    # An error, or a server that ignored `stream: true` and answered in one body.
                    raw = await upstream.read_error_body()
                    parsed = parse_json(raw)
                    if not 200 <= upstream.status < 300:
                        raise classify_error(
                            upstream.status,
                            parsed if parsed is not None else raw,
                            upstream.headers,
                            provider,
                            secrets=secrets_in(headers),
                        )
                    for event in events_from_response(_parse_body(parsed, request, quirks, endpoint)):
                        yield event
                    return
                async for chunk in upstream.chunks():
                    for sse in decoder.feed(chunk):
                        events = _translate(sse.data, translator, request, provider)
                        if translator.done:
                            upstream.finish()  # keeps the connection (providers/tail.py)
                        for event in events:
                            yield event
                        if translator.done:
                            return
                for sse in decoder.end():
                    for event in _translate(sse.data, translator, request, provider):
                        yield event
                    if translator.done:
                        return
            raise ProviderError(ErrorClass.NETWORK, "stream ended without [DONE]", provider=provider)
        except ProviderError as exc:
            raise _finalize(exc, request.model, secrets_in(headers)) from None


def _origin(endpoint: Endpoint) -> str:
    return reasoning_origin(WireProtocol.OPENAI_CHAT, endpoint.preset.id)


def _is_json(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("application/json")


def _parse_body(data: Any, req: ChatRequest, quirks: OpenAIQuirks, endpoint: Endpoint) -> ChatResponse:
    provider = endpoint.preset.id.value
    if not isinstance(data, dict):
        raise ProviderError(
            ErrorClass.SERVER_ERROR, "malformed upstream response: not a JSON object", provider=provider
        )
    with vendor_shape("response", provider=provider, model=req.model):
        response = parse_response(
            data, id_map=tool_id_map(req, quirks), provider=provider, origin=_origin(endpoint)
        )
    if req.response_format is None:
        return response
    refused = response.refusal is not None or response.finish_reason is FinishReason.CONTENT_FILTER
    return replace(response, parsed=_structured(response.text, refused, req, provider))


def _translate(data: str, translator: StreamTranslator, req: ChatRequest, provider: str) -> list[StreamEvent]:
    if data == "[DONE]":
        with vendor_shape("stream", provider=provider, model=req.model):
            events = translator.finish()
        if req.response_format is not None:
            # Checked before `Finish` reaches the caller: output that fails the schema is an error, not an end.
            refused = translator.finish_reason is FinishReason.CONTENT_FILTER
            _structured("".join(translator.text), refused, req, provider)
        return events
    payload = parse_json(data)
    if not isinstance(payload, dict):
        raise ProviderError(ErrorClass.SERVER_ERROR, "malformed SSE data from upstream", provider=provider)
    try:  # `vendor_shape` inline: this runs once per chunk
        return translator.feed(payload)
    except ProviderError:
        raise
    except SHAPE_ERRORS as exc:
        raise malformed("stream chunk", exc, provider=provider, model=req.model) from None


def _structured(text: str, refused: bool, req: ChatRequest, provider: str) -> Any:
    """The validated value for a structured-output request, or a typed error."""
    assert req.response_format is not None
    if refused:
        raise ProviderError(
            ErrorClass.CONTENT_FILTER,
            "model refused to produce the structured output",
            provider=provider,
            provider_code="refusal",
        )
    return validate_output(text, req.response_format, provider=provider, model=req.model)


def _finalize(exc: ProviderError, model: str, secrets: tuple[str, ...]) -> ProviderError:
    """Attach the model and scrub once more: no path may carry the key into a message."""
    exc.message = redact(exc.message, secrets)
    exc.args = (exc.message,)
    if exc.model is None:
        exc.model = model
    return exc
