"""The `anthropic-messages` adapter: `POST {base}/v1/messages`, JSON or named-event SSE.

Translation lives in the pure `anthropic_*wire` modules; this module is the thin I/O around
them: headers (the one place a key is revealed), the shared HTTP layer, SSE decoding, error
classification and structured-output validation.

The API version is pinned on every request (`contract.ANTHROPIC_VERSION` unless the adapter or
the connection's extra headers say otherwise) because the API's behaviour depends on it; the
body is built for that same version, so sampling parameters are never sent to 2026-10-21.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson

from providers import http
from providers.auth import add_auth_header
from providers.contract import ANTHROPIC_VERSION, ErrorClass, ProviderId, WireProtocol
from providers.errors import ProviderError, StructuredOutputError
from providers.redaction import secrets_in
from providers.reply_headers import parse_retry_after
from providers.sse import aiter_sse
from providers.structured import validate_output
from providers.types import ChatRequest, ChatResponse, Finish, FinishReason, StreamEvent, reasoning_origin
from providers.upstream_pool import UpstreamClients

from .anthropic_errors_wire import classify_error
from .anthropic_response_wire import parse_response
from .anthropic_stream_wire import AnthropicStreamTranslator
from .anthropic_wire import WireRequest, build_request
from .base import ChatAdapter, Endpoint, vendor_shape

__all__ = [
    "AnthropicMessagesAdapter",
    "AnthropicStreamTranslator",
    "build_request",
    "classify_error",
    "parse_response",
]

_PROVIDER = ProviderId.ANTHROPIC.value
_VERSION_HEADER = "anthropic-version"
_UNSTRUCTURED_FINISHES = frozenset({FinishReason.CONTENT_FILTER, FinishReason.LENGTH, FinishReason.PAUSE})
"""Finishes that legitimately end without the structured-output tool call (a refusal, a cut)."""


def _protocol_error(message: str) -> ProviderError:
    return ProviderError(ErrorClass.SERVER_ERROR, message, provider=_PROVIDER)


class AnthropicMessagesAdapter(ChatAdapter):
    protocol = WireProtocol.ANTHROPIC_MESSAGES

    def __init__(
        self,
        clients: UpstreamClients,
        timeouts: http.Timeouts | None = None,
        *,
        version: str = ANTHROPIC_VERSION,
    ) -> None:
        self._clients = clients
        self._timeouts = timeouts or http.Timeouts()
        self._version = version

    def _version_for(self, endpoint: Endpoint) -> str:
        return endpoint.extra_headers.get(_VERSION_HEADER) or self._version

    def _headers(self, endpoint: Endpoint, version: str) -> dict[str, str]:
        headers = {**endpoint.preset.extra_headers, **endpoint.extra_headers}
        headers.update(
            {"content-type": "application/json", "accept": "application/json", _VERSION_HEADER: version}
        )
        add_auth_header(headers, endpoint.preset.auth_style, endpoint.credential, "chat")
        return headers

    @staticmethod
    def _url(endpoint: Endpoint) -> str:
        return (endpoint.base_url or endpoint.preset.base_url).rstrip("/") + "/v1/messages"

    def _origin(self, endpoint: Endpoint) -> str:
        return reasoning_origin(self.protocol, endpoint.preset.id)

    def _prepare(
        self, request: ChatRequest, endpoint: Endpoint, *, stream: bool
    ) -> tuple[WireRequest, bytes, str]:
        version = self._version_for(endpoint)
        wire = build_request(request, version=version, origin=self._origin(endpoint))
        body: dict[str, Any] = {**wire.body, "stream": True} if stream else wire.body
        return wire, orjson.dumps(body), version

    def _error(
        self, status: int, body: bytes, headers: Mapping[str, str], sent: Mapping[str, str], model: str
    ) -> ProviderError:
        return classify_error(
            status,
            body,
            headers,
            retry_after=parse_retry_after(headers),
            secrets=secrets_in(sent),
            model=model,
        )

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> ChatResponse:
        wire, body, version = self._prepare(request, endpoint, stream=False)
        headers = self._headers(endpoint, version)
        response = await http.request(
            self._clients,
            "POST",
            self._url(endpoint),
            headers=headers,
            body=body,
            timeouts=self._timeouts,
            provider=_PROVIDER,
        )
        if not 200 <= response.status < 300:
            raise self._error(response.status, response.body, response.headers, headers, request.model)
        payload = response.json()
        if not isinstance(payload, dict):
            raise _protocol_error("response body is not JSON")
        with vendor_shape("response", provider=_PROVIDER, model=request.model):
            result = parse_response(
                payload, structured_tool=wire.structured_tool, origin=self._origin(endpoint)
            )
        if wire.structured_tool is None:
            return result
        if result.parsed is None:
            if result.finish_reason in _UNSTRUCTURED_FINISHES:
                return result
            raise StructuredOutputError(
                "model did not call the structured output tool", provider=_PROVIDER, model=request.model
            )
        return replace(result, parsed=self._validate(result.text, request))

    def _validate(self, text: str, request: ChatRequest) -> Any:
        assert request.response_format is not None
        return validate_output(text, request.response_format, provider=_PROVIDER, model=request.model)

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
        wire, body, version = self._prepare(request, endpoint, stream=True)
        headers = self._headers(endpoint, version)
        headers["accept"] = "text/event-stream"
        async with http.open_stream(
            self._clients,
            "POST",
            self._url(endpoint),
            headers=headers,
            body=body,
            timeouts=self._timeouts,
            provider=_PROVIDER,
        ) as upstream:
            if not 200 <= upstream.status < 300:
                raw = await upstream.read_error_body()
                raise self._error(upstream.status, raw, upstream.headers, headers, request.model)
            translator = AnthropicStreamTranslator(
                structured_tool=wire.structured_tool,
                secrets=secrets_in(headers),
                origin=self._origin(endpoint),
            )
            async for sse in aiter_sse(upstream.chunks(), provider=_PROVIDER):
                data = http.parse_json(sse.data)
                if not isinstance(data, dict):
                    raise _protocol_error("stream event data is not a JSON object")
                with vendor_shape("stream event", provider=_PROVIDER, model=request.model):
                    events = translator.feed(sse.event, data)
                if translator.finished:
                    upstream.finish()  # `message_stop`: keeps the connection (providers/tail.py)
                for event in events:
                    if isinstance(event, Finish) and wire.structured_tool is not None:
                        self._finish_structured(translator, event, request)
                    yield event
                if translator.finished:
                    return
            with vendor_shape("stream", provider=_PROVIDER, model=request.model):
                translator.end()

    def _finish_structured(
        self, translator: AnthropicStreamTranslator, finish: Finish, request: ChatRequest
    ) -> None:
        if translator.structured_text is not None:
            self._validate(translator.structured_text, request)
        elif finish.reason not in _UNSTRUCTURED_FINISHES:
            raise StructuredOutputError(
                "model did not call the structured output tool", provider=_PROVIDER, model=request.model
            )
