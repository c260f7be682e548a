"""The `gemini-generate` adapter: `POST {base}/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`, keyed with `x-goog-api-key`.

Translation lives in the pure `gemini_*wire` modules; this module is the thin I/O around them:
headers (the one place a key is revealed), the shared HTTP layer, SSE decoding, error
classification and structured-output validation. Structured output is validated only when the
model finished normally; a blocked or truncated answer is returned (or finished) as is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import orjson

from providers import http
from providers.auth import add_auth_header
from providers.contract import ErrorClass, ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.redaction import secrets_in
from providers.sse import aiter_sse
from providers.structured import validate_output
from providers.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    reasoning_origin,
)
from providers.upstream_pool import UpstreamClients

from .base import ChatAdapter, Endpoint, vendor_shape
from .gemini_errors_wire import classify_error
from .gemini_response_wire import parse_response
from .gemini_stream_wire import GeminiStreamTranslator
from .gemini_wire import build_request

__all__ = [
    "GeminiGenerateAdapter",
    "GeminiStreamTranslator",
    "build_request",
    "classify_error",
    "parse_response",
]

_PROVIDER = ProviderId.GEMINI.value
_API_VERSION = "v1beta"


def _protocol_error(message: str, model: str) -> ProviderError:
    return ProviderError(ErrorClass.SERVER_ERROR, message, provider=_PROVIDER, model=model)


class GeminiGenerateAdapter(ChatAdapter):
    protocol = WireProtocol.GEMINI_GENERATE

    def __init__(self, clients: UpstreamClients, timeouts: http.Timeouts | None = None) -> None:
        self._clients = clients
        self._timeouts = timeouts or http.Timeouts()

    @staticmethod
    def _headers(endpoint: Endpoint) -> dict[str, str]:
        headers = {**endpoint.preset.extra_headers, **endpoint.extra_headers}
        headers.update({"content-type": "application/json", "accept": "application/json"})
        add_auth_header(headers, endpoint.preset.auth_style, endpoint.credential, "chat")
        return headers

    @staticmethod
    def _url(endpoint: Endpoint, model: str, method: str) -> str:
        model = model.removeprefix("models/")
        base = (endpoint.base_url or endpoint.preset.base_url).rstrip("/")
        return f"{base}/{_API_VERSION}/models/{quote(model, safe='-._~')}:{method}"

    def _error(
        self, status: int, body: bytes, headers: Mapping[str, str], sent: Mapping[str, str], model: str
    ) -> ProviderError:
        return classify_error(status, body, headers, secrets=secrets_in(sent), model=model)

    def _validate(self, text: str, request: ChatRequest) -> Any:
        assert request.response_format is not None
        return validate_output(text, request.response_format, provider=_PROVIDER, model=request.model)

    def _origin(self, endpoint: Endpoint) -> str:
        return reasoning_origin(self.protocol, endpoint.preset.id)

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> ChatResponse:
        body = orjson.dumps(build_request(request, self._origin(endpoint)))
        headers = self._headers(endpoint)
        response = await http.request(
            self._clients,
            "POST",
            self._url(endpoint, request.model, "generateContent"),
            headers=headers,
            body=body,
            timeouts=self._timeouts,
            provider=_PROVIDER,
        )
        if not 200 <= response.status < 300:
            raise self._error(response.status, response.body, response.headers, headers, request.model)
        payload = response.json()
        if not isinstance(payload, dict):
            raise _protocol_error("response body is not a JSON object", request.model)
        with vendor_shape("response", provider=_PROVIDER, model=request.model):
            result = parse_response(payload, model=request.model, origin=self._origin(endpoint))
        if request.response_format is not None and result.finish_reason is FinishReason.STOP:
            result = replace(result, parsed=self._validate(result.text, request))
        return result

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(build_request(request, self._origin(endpoint)))
        headers = self._headers(endpoint)
        headers["accept"] = "text/event-stream"
        url = self._url(endpoint, request.model, "streamGenerateContent") + "?alt=sse"
        async with http.open_stream(
            self._clients,
            "POST",
            url,
            headers=headers,
            body=body,
            timeouts=self._timeouts,
            provider=_PROVIDER,
        ) as upstream:
            if not 200 <= upstream.status < 300:
                raw = await upstream.read_error_body()
                raise self._error(upstream.status, raw, upstream.headers, headers, request.model)
            translator = GeminiStreamTranslator(
                secrets=secrets_in(headers), model=request.model, origin=self._origin(endpoint)
            )
            text: list[str] = []
            async for sse in aiter_sse(upstream.chunks(), provider=_PROVIDER):
                chunk = http.parse_json(sse.data)
                if not isinstance(chunk, dict):
                    raise _protocol_error("stream chunk is not a JSON object", request.model)
                with vendor_shape("stream chunk", provider=_PROVIDER, model=request.model):
                    events = translator.feed(chunk)
                for event in events:
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    yield event
            with vendor_shape("stream", provider=_PROVIDER, model=request.model):
                ending = translator.end()
            for event in ending:
                structured = request.response_format is not None
                if structured and isinstance(event, Finish) and event.reason is FinishReason.STOP:
                    self._validate("".join(text), request)
                yield event
