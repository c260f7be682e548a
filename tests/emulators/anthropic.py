"""An Anthropic Messages API emulator, as a Starlette app.

`POST /v1/messages` (JSON or named-event SSE) and `GET /v1/models`. Auth is `x-api-key` or
`Authorization: Bearer` (SDK 2.x); `anthropic-version` is required and decides whether
sampling parameters are accepted (2026-10-21 rejects them with 400). Answers follow the queued
`ChatScenario`s (tests/emulators/chat_scenarios.py); `ERRORS` holds the exact error responses
per class. Every request and client disconnect is recorded (`requests`, `disconnects`).

Extended thinking: when the request enables `thinking`, the answer opens with a signed
`thinking` block (`thinking_delta`s then a `signature_delta` when streamed), plus a
`redacted_thinking` block for a scenario that asks for one. Such a request is validated like the
real API: every replayed thinking block must carry the signature issued for its text, and the
last assistant turn, when its tool uses are being answered, must start with a thinking block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.emulators.chat_scenarios import (
    ChatEmulator,
    ChatScenario,
    Playback,
    approx_tokens,
    cut_bytes,
    emulator_signature,
    split_json,
    split_text,
)

VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
MODELS = (("claude-sonnet-4-6", "Claude Sonnet 4.6"), ("claude-haiku-4-5", "Claude Haiku 4.5"))
REQUEST_ID = "req_011CVEmulator0000000001"
DEFAULT_THINKING = "Let me think about what the user needs."
REDACTED_DATA = (
    "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj"
)


@dataclass(frozen=True)
class ErrorFixture:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] | None = None
    raw_body: bytes | None = None
    """A body that is not the API's JSON (the edge's 413 page)."""

    def payload(self, api_key: str = "") -> dict[str, Any]:
        message = self.message.replace("{api_key}", api_key)
        error: dict[str, Any] = {"type": self.error_type, "message": message}
        if self.details is not None:
            error["details"] = self.details
        return {"type": "error", "error": error, "request_id": REQUEST_ID}

    def response(self, api_key: str = "") -> Response:
        headers = {"request-id": REQUEST_ID, "x-should-retry": "false", **self.headers}
        if self.raw_body is not None:
            return Response(self.raw_body, status_code=self.status, headers=headers, media_type="text/html")
        return JSONResponse(self.payload(api_key), status_code=self.status, headers=headers)


_RATE_HEADERS = {
    "retry-after": "7",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2026-11-25T12:00:07Z",
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "0",
    "anthropic-ratelimit-tokens-reset": "2026-11-25T12:00:07Z",
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": "2026-11-25T12:00:07Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "8000",
    "anthropic-ratelimit-output-tokens-reset": "2026-11-25T12:00:00Z",
}

ERRORS: dict[str, ErrorFixture] = {
    "invalid_request": ErrorFixture(400, "invalid_request_error", "messages.0.content: Field required"),
    "context_length": ErrorFixture(
        400, "invalid_request_error", "prompt is too long: 215304 tokens > 200000 maximum"
    ),
    "credit_balance": ErrorFixture(
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    ),
    "auth": ErrorFixture(401, "authentication_error", "invalid x-api-key"),
    # Not what Anthropic says, but what some proxies in front of it do: echo the key back.
    "auth_echo": ErrorFixture(401, "authentication_error", "invalid x-api-key: {api_key}"),
    "billing": ErrorFixture(402, "billing_error", "There is an issue with your account's billing."),
    "permission": ErrorFixture(
        403, "permission_error", "Your API key does not have permission to use the specified resource."
    ),
    "not_found": ErrorFixture(404, "not_found_error", "model: claude-does-not-exist"),
    "timeout": ErrorFixture(408, "timeout_error", "Request timed out"),
    "request_too_large": ErrorFixture(
        413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
    ),
    "request_too_large_edge": ErrorFixture(
        413,
        "request_too_large",
        "",
        raw_body=b"<html><head><title>413 Request Entity Too Large</title></head>"
        b"<body><center><h1>413 Request Entity Too Large</h1></center><hr><center>cloudflare</center></body></html>",
    ),
    "rate_limit": ErrorFixture(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
        headers=_RATE_HEADERS,
    ),
    "spend_limit": ErrorFixture(
        429,
        "rate_limit_error",
        "You have reached your specified workspace API usage limits.",
        headers={"retry-after": "3600"},
        details={"error_code": "enforced_spend_limit_reached"},
    ),
    "server_error": ErrorFixture(500, "api_error", "Internal server error"),
    "gateway_timeout": ErrorFixture(504, "timeout_error", "Gateway timeout"),
    "overloaded": ErrorFixture(529, "overloaded_error", "Overloaded"),
}


def _error_body(kind: str, message: str) -> JSONResponse:
    return ErrorFixture(400, kind, message).response()


def _usage(request_json: dict[str, Any], output_tokens: int, overrides: dict[str, int]) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": approx_tokens(request_json.get("messages"))
        + approx_tokens(request_json.get("system", "")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    usage.update(overrides)
    if "cache_creation_input_tokens" in overrides:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": overrides["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        }
    return usage


def _structured_tool_name(request_json: dict[str, Any]) -> str:
    choice = request_json.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return str(choice["name"])
    tools = request_json.get("tools") or [{"name": "json_output"}]
    return str(tools[0]["name"])


def thinking_enabled(request_json: dict[str, Any]) -> bool:
    thinking = request_json.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def thinking_signature(text: str) -> str:
    return emulator_signature("anthropic-thinking", text)


def content_blocks(scenario: ChatScenario, request_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant content the scenario produces (ids are deterministic per request)."""
    blocks: list[dict[str, Any]] = []
    if thinking_enabled(request_json):
        thought = scenario.thinking or DEFAULT_THINKING
        blocks.append({"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)})
        if scenario.redacted_thinking:
            blocks.append({"type": "redacted_thinking", "data": REDACTED_DATA})
    if scenario.text:
        blocks.append({"type": "text", "text": scenario.text})
    for i, call in enumerate(scenario.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_01Emu{i:04d}",
                "name": call.name,
                "input": dict(call.arguments),
            }
        )
    if scenario.json_value is not None:
        name = _structured_tool_name(request_json)
        blocks.append(
            {"type": "tool_use", "id": "toolu_01EmuJson", "name": name, "input": scenario.json_value}
        )
    return blocks


def stop_reason(scenario: ChatScenario, blocks: list[dict[str, Any]]) -> str:
    if scenario.stop_reason:
        return scenario.stop_reason
    if scenario.refusal or scenario.prompt_blocked:
        return "refusal"
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def thinking_failure(request_json: dict[str, Any]) -> str | None:
    """What the real API says about a thinking request's history, if it refuses it."""
    messages = [m for m in request_json.get("messages") or [] if isinstance(m, dict)]
    last_assistant = None
    for i, m in enumerate(messages):
        content = m.get("content")
        if m.get("role") != "assistant" or not isinstance(content, list):
            continue
        last_assistant = i
        for j, block in enumerate(content):
            if block.get("type") == "thinking" and block.get("signature") != thinking_signature(
                str(block.get("thinking"))
            ):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if block.get("type") == "redacted_thinking" and block.get("data") != REDACTED_DATA:
                return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
    if last_assistant is None:
        return None
    content = messages[last_assistant]["content"]
    answered = any(
        isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
        for m in messages[last_assistant + 1 :]
    )
    uses_tools = any(b.get("type") == "tool_use" for b in content)
    if answered and uses_tools and content[0].get("type") not in ("thinking", "redacted_thinking"):
        return (
            f"messages.{last_assistant}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{content[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
            "recommend you include thinking blocks from previous turns. To avoid this requirement, disable "
            "`thinking`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )
    return None


def _stop_details(reason: str) -> dict[str, Any] | None:
    if reason != "refusal":
        return None
    return {"type": "refusal", "category": "cyber", "explanation": "This request could enable cyber harm."}


def message(scenario: ChatScenario, request_json: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming Message body."""
    blocks = content_blocks(scenario, request_json)
    reason = stop_reason(scenario, blocks)
    return {
        "id": "msg_01EmulatorMessage000001",
        "type": "message",
        "role": "assistant",
        "model": request_json.get("model", MODELS[0][0]),
        "content": blocks,
        "stop_reason": reason,
        "stop_sequence": None,
        "stop_details": _stop_details(reason),
        "usage": _usage(request_json, approx_tokens(blocks) if blocks else 1, dict(scenario.usage)),
    }


def stream_events(scenario: ChatScenario, request_json: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The named SSE events of a streamed answer, fragmented as the real API does."""
    full = message(scenario, request_json)
    start = dict(full, content=[], stop_reason=None, stop_details=None)
    start["usage"] = dict(full["usage"], output_tokens=1)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(full["content"]):
        if block["type"] == "thinking":
            events += _thinking_events(index, block, scenario.pieces)
        elif block["type"] == "redacted_thinking":
            start = {"type": "content_block_start", "index": index, "content_block": block}
            events.append(("content_block_start", start))
        elif block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for piece in split_text(block["text"], scenario.pieces):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": head},
                )
            )
            # The real API opens every tool input with an empty fragment; an argument-less
            # tool sends nothing more.
            raw = json.dumps(block["input"]) if block["input"] else ""
            for fragment in ["", *split_json(raw)]:
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": fragment},
                        },
                    )
                )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = {
        k: full["usage"][k]
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": full["stop_reason"],
                    "stop_sequence": None,
                    "stop_details": full["stop_details"],
                },
                "usage": usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _thinking_events(index: int, block: dict[str, Any], pieces: int) -> list[tuple[str, dict[str, Any]]]:
    """A thinking block as the API streams it: empty start, thinking deltas, one signature delta."""
    head = {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [{"type": "thinking_delta", "thinking": p} for p in split_text(block["thinking"], pieces)]
    deltas.append({"type": "signature_delta", "signature": block["signature"]})
    return [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": head})
    ] + [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_bytes(scenario: ChatScenario, request_json: dict[str, Any]) -> list[bytes]:
    events = [encode_event(n, d) for n, d in stream_events(scenario, request_json)]
    if scenario.stream_error:
        fixture = ERRORS[scenario.stream_error]
        cut = min(scenario.error_after, len(events) - 1)
        events = [*events[:cut], encode_event("error", fixture.payload())]
    if scenario.malformed_after is not None:
        events[scenario.malformed_after] = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","ind\n\n'
        )
    if scenario.fragment_bytes:
        events = cut_bytes(events, scenario.fragment_bytes)
    return events


def _presented_key(request: Request) -> str:
    """`x-api-key` wins over `Authorization: Bearer`, as on the real API."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else ""
    return key


class AnthropicEmulator(ChatEmulator):
    """`emulator.app` is the ASGI app; scripting and recording come from `ChatScript`."""

    def _routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]

    def _auth_failure(self, request: Request) -> Response | None:
        key = _presented_key(request)
        if not key or (self.api_key is not None and key != self.api_key):
            return ERRORS["auth"].response()
        return None

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        data = [
            {
                "type": "model",
                "id": mid,
                "display_name": name,
                "created_at": "2026-02-17T00:00:00Z",
                "lifecycle": "active",
                "max_input_tokens": 200000,
                "max_tokens": 64000,
            }
            for mid, name in MODELS
        ]
        return JSONResponse(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    def _validate(self, request: Request, body: dict[str, Any] | None) -> Response | None:
        version = request.headers.get("anthropic-version")
        if version is None:
            return _error_body("invalid_request_error", "anthropic-version: header is required")
        if version not in VERSIONS:
            return _error_body("invalid_request_error", f"anthropic-version: invalid version {version!r}")
        if body is None:
            return _error_body(
                "invalid_request_error", "There was an issue with the request body: not valid JSON"
            )
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return _error_body("invalid_request_error", f"{name}: Field required")
        if version == "2026-10-21":
            for name in SAMPLING_PARAMS:
                if name in body:
                    return _error_body("invalid_request_error", f"{name}: Extra inputs are not permitted")
        if thinking_enabled(body):
            choice = body.get("tool_choice")
            if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
                return _error_body(
                    "invalid_request_error", "Thinking may not be enabled when tool_choice forces tool use."
                )
            failure = thinking_failure(body)
            if failure is not None:
                return _error_body("invalid_request_error", failure)
        return None

    async def _messages(self, request: Request) -> Response:
        parsed = await self._record(request)
        body: dict[str, Any] | None = parsed if isinstance(parsed, dict) else None
        failure = self._auth_failure(request) or self._validate(request, body)
        if failure is not None:
            return failure
        assert body is not None
        scenario = self.next()
        if scenario.error:
            return ERRORS[scenario.error].response(_presented_key(request))
        headers = {"request-id": REQUEST_ID, "anthropic-organization-id": "emulator-org"}
        if body.get("stream"):
            return Playback(
                stream_bytes(scenario, body),
                scenario,
                self,
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        payload = json.dumps(message(scenario, body)).encode()
        return Playback(
            [payload[: len(payload) // 2], payload[len(payload) // 2 :]],
            scenario,
            self,
            media_type="application/json",
            headers=headers,
        )
