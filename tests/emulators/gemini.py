"""A Gemini Developer API emulator, as a Starlette app.

`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` (without
`alt=sse`: one JSON array) and `GET /v1beta/models`. Auth is `x-goog-api-key` or `?key=`.
Answers follow the queued `ChatScenario`s (tests/emulators/chat_scenarios.py) the way the real
API shapes them: zero usage fields omitted, `finishReason: STOP` even with `functionCall` parts,
a blocked prompt as HTTP 200 with no candidates, SSE lines ending in `\\r\\n`, no terminator.
`ERRORS` holds the exact error bodies per class, with `ErrorInfo`, `QuotaFailure` and `RetryInfo`.

Thinking: a scenario with `thinking` signs its answer like Gemini 3 (`thoughtSignature` on the
first `functionCall` part, else on the last text part; a thought-summary part first when the
request sets `includeThoughts`). Requests to a `gemini-3*` model are validated like Gemini 3
does: in the current turn (after the last user text), every model step with function calls
must carry a signature on its first call, either the one this emulator issued for that call or
Google's documented dummy; otherwise a 400 `INVALID_ARGUMENT`.
"""

from __future__ import annotations

import base64
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
    split_text,
)

MODELS = (("gemini-2.5-flash", "Gemini 2.5 Flash"), ("gemini-2.5-pro", "Gemini 2.5 Pro"))
RESPONSE_ID = "8Q0laemUDomQ1dkP1ZK7oA8"
_RPC = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class ErrorFixture:
    status: int
    rpc_status: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message, "status": self.rpc_status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> Response:
        return JSONResponse(
            self.payload(), status_code=self.status, headers={"x-goog-request-id": "emu-0001"}
        )


def _quota_failure(quota_id: str, value: str) -> dict[str, Any]:
    return {
        "@type": _RPC + "QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                "quotaValue": value,
            }
        ],
    }


_HELP = {
    "@type": _RPC + "Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}

_KEY_INVALID = "API key not valid. Please pass a valid API key."

ERRORS: dict[str, ErrorFixture] = {
    "auth": ErrorFixture(
        400,
        "INVALID_ARGUMENT",
        _KEY_INVALID,
        [
            {
                "@type": _RPC + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": _KEY_INVALID},
        ],
    ),
    "unauthenticated": ErrorFixture(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    ),
    "invalid_request": ErrorFixture(
        400,
        "INVALID_ARGUMENT",
        'Invalid JSON payload received. Unknown name "foo": Cannot find field.',
        [
            {
                "@type": _RPC + "BadRequest",
                "fieldViolations": [{"description": 'Unknown name "foo": Cannot find field.'}],
            }
        ],
    ),
    "context_length": ErrorFixture(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200341) exceeds the maximum number of tokens allowed (1048576).",
    ),
    "failed_precondition": ErrorFixture(
        400, "FAILED_PRECONDITION", "User location is not supported for the API use."
    ),
    "permission": ErrorFixture(403, "PERMISSION_DENIED", "The caller does not have permission"),
    "not_found": ErrorFixture(
        404,
        "NOT_FOUND",
        "models/gemini-0.1-nope is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    ),
    "rate_limit": ErrorFixture(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
        "limit: 10, model: gemini-2.5-flash\nPlease retry in 46.414205ms.",
        [
            _HELP,
            _quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "10"),
            {"@type": _RPC + "RetryInfo", "retryDelay": "46s"},
        ],
    ),
    "quota_zero": ErrorFixture(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, "
        "limit: 0, model: gemini-2.5-pro",
        [
            _HELP,
            _quota_failure("GenerateContentInputTokensPerModelPerMinute-FreeTier", "0"),
            {"@type": _RPC + "RetryInfo", "retryDelay": "12s"},
        ],
    ),
    "daily_quota": ErrorFixture(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
        "limit: 250, model: gemini-2.5-flash",
        [
            _HELP,
            _quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"),
            {"@type": _RPC + "RetryInfo", "retryDelay": "3s"},
        ],
    ),
    "server_error": ErrorFixture(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "overloaded": ErrorFixture(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "timeout": ErrorFixture(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def _drop_zeros(usage: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if v != 0}


def usage_metadata(request_json: dict[str, Any], output: Any, overrides: dict[str, int]) -> dict[str, Any]:
    prompt = approx_tokens(request_json.get("contents")) + approx_tokens(
        request_json.get("systemInstruction", "")
    )
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": approx_tokens(output) if output else 0,
        "thoughtsTokenCount": 0,
        "cachedContentTokenCount": 0,
        "toolUsePromptTokenCount": 0,
    }
    usage.update(overrides)
    usage["totalTokenCount"] = sum(
        usage[k]
        for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount")
    )
    usage = _drop_zeros(usage)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.get("promptTokenCount", 0)}]
    if "cachedContentTokenCount" in usage:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage["cachedContentTokenCount"]}]
    return usage


DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")


def call_signature(call: dict[str, Any]) -> str:
    """The signature this emulator issues for a `functionCall` (bound to its name and args)."""
    return emulator_signature("gemini-call", call.get("name"), call.get("args") or {})


def _include_thoughts(request_json: dict[str, Any]) -> bool:
    config = (request_json.get("generationConfig") or {}).get("thinkingConfig") or {}
    return bool(config.get("includeThoughts"))


def answer_parts(scenario: ChatScenario, request_json: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if scenario.text:
        parts.append({"text": scenario.text})
    if scenario.json_value is not None:
        parts.append({"text": json.dumps(scenario.json_value)})
    calls = [{"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in scenario.tool_calls]
    if scenario.thinking:
        # Gemini 3 signs the first call of a step (parallel calls share it), else the last text part.
        if calls:
            calls[0]["thoughtSignature"] = call_signature(calls[0]["functionCall"])
        elif parts:
            parts[-1]["thoughtSignature"] = emulator_signature("gemini-text", parts[-1]["text"])
        if _include_thoughts(request_json or {}):
            parts.insert(0, {"text": scenario.thinking, "thought": True})
    return parts + calls


def _signature_bytes(value: str) -> bytes | None:
    """A `bytes` field as the API decodes it: standard or URL-safe base64, padding optional."""
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4))
    except ValueError:
        return None


def _current_turn(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contents after the last user message with text: what Gemini 3 validates."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role") == "user" and any("text" in p for p in content.get("parts") or []):
            start = i + 1
    return contents[start:]


def signature_failure(contents: list[dict[str, Any]]) -> str | None:
    """Gemini 3's complaint about the current turn's function-call signatures, if any."""
    position = 0
    for content in _current_turn(contents):
        if content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts") or [] if "functionCall" in p]
        if not calls:
            continue
        first = calls[0]
        name = first["functionCall"].get("name")
        signature = first.get("thoughtSignature")
        position += 1
        if signature is None:
            return (
                "Function call is missing a thought_signature in functionCall parts. This is required for "
                "tools to work correctly, and missing thought_signature may lead to degraded model "
                f"performance. Additional data, function call `default_api:{name}` , position {position}. "
                "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        issued = _signature_bytes(call_signature(first["functionCall"]))
        if signature not in DUMMY_SIGNATURES and _signature_bytes(signature) != issued:
            return "Corrupted thought signature."
    return None


def _finish(scenario: ChatScenario) -> str:
    return scenario.stop_reason or ("SAFETY" if scenario.refusal else "STOP")


_BLOCKED_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def _envelope(model: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "modelVersion": model, "responseId": RESPONSE_ID}


def generate_response(scenario: ChatScenario, request_json: dict[str, Any], model: str) -> dict[str, Any]:
    """The non-streaming `GenerateContentResponse`."""
    usage = usage_metadata(request_json, None, dict(scenario.usage))
    if scenario.prompt_blocked:
        feedback = {"blockReason": scenario.prompt_blocked, "safetyRatings": _BLOCKED_RATINGS}
        return _envelope(model, promptFeedback=feedback, usageMetadata=usage)
    parts = answer_parts(scenario, request_json)
    candidate: dict[str, Any] = {"finishReason": _finish(scenario), "index": 0}
    if scenario.refusal:
        candidate["safetyRatings"] = _BLOCKED_RATINGS
    elif parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    overrides = dict(scenario.usage)
    if scenario.thinking:
        overrides.setdefault("thoughtsTokenCount", approx_tokens(scenario.thinking) * 4)
    usage = usage_metadata(request_json, [p for p in parts if not p.get("thought")], overrides)
    return _envelope(model, candidates=[candidate], usageMetadata=usage)


def stream_chunks(scenario: ChatScenario, request_json: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The `GenerateContentResponse` chunks of a streamed answer; usage is cumulative."""
    full = generate_response(scenario, request_json, model)
    if "candidates" not in full or "content" not in full["candidates"][0]:
        return [full]
    parts = full["candidates"][0]["content"]["parts"]
    groups: list[list[dict[str, Any]]] = []
    for part in parts:
        if part.get("thought"):
            groups.append([part])
        elif "text" in part:
            pieces = [{"text": piece} for piece in split_text(part["text"], scenario.pieces)]
            if "thoughtSignature" in part:
                # The signature rides on the text's last chunk.
                pieces[-1]["thoughtSignature"] = part["thoughtSignature"]
            groups += [[piece] for piece in pieces]
    calls = [p for p in parts if "functionCall" in p]
    if calls:
        # Each call arrives whole; parallel calls share one chunk.
        groups.append(calls)
    chunks: list[dict[str, Any]] = []
    so_far: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        so_far += group
        last = i == len(groups) - 1
        candidate: dict[str, Any] = {"content": {"parts": group, "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = full["candidates"][0]["finishReason"]
        usage = full["usageMetadata"] if last else usage_metadata(request_json, so_far, {})
        chunks.append(_envelope(model, candidates=[candidate], usageMetadata=usage))
    return chunks


def encode_chunk(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\r\n\r\n"


def stream_bytes(scenario: ChatScenario, request_json: dict[str, Any], model: str) -> list[bytes]:
    frames = [encode_chunk(c) for c in stream_chunks(scenario, request_json, model)]
    if scenario.stream_error:
        cut = min(scenario.error_after, len(frames) - 1)
        frames = [*frames[:cut], encode_chunk(ERRORS[scenario.stream_error].payload())]
    if scenario.malformed_after is not None:
        frames.insert(scenario.malformed_after, b'data: {"candidates": [{"content": {"parts": [{"te\r\n\r\n')
    if scenario.fragment_bytes:
        frames = cut_bytes(frames, scenario.fragment_bytes)
    return frames


def _model_entry(model_id: str, display: str) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": display,
        "description": f"{display}, served by the Patchbay emulator",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


class GeminiEmulator(ChatEmulator):
    """`emulator.app` is the ASGI app; scripting and recording come from `ChatScript`."""

    def _routes(self) -> list[BaseRoute]:
        return [
            Route("/v1beta/models", self._models, methods=["GET"]),
            Route("/v1beta/models/{target}", self._generate, methods=["POST"]),
        ]

    def _auth_failure(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            return ERRORS["unauthenticated"].response()
        if self.api_key is not None and key != self.api_key:
            return ERRORS["auth"].response()
        return None

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        return JSONResponse({"models": [_model_entry(m, d) for m, d in MODELS]})

    @staticmethod
    def _invalid(message: str) -> Response:
        return ErrorFixture(400, "INVALID_ARGUMENT", message).response()

    def _validate(self, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return self._invalid("Invalid JSON payload received.")
        contents = body.get("contents")
        if not contents:
            return self._invalid("* GenerateContentRequest.contents: contents is not specified\n")
        for content in contents:
            if content.get("role") not in ("user", "model"):
                return self._invalid("Please use a valid role: user, model.")
            if not content.get("parts"):
                return self._invalid(
                    "* GenerateContentRequest.contents.parts: contents.parts must not be empty.\n"
                )
        return None

    def _validate_signatures(self, model: str, body: dict[str, Any]) -> Response | None:
        if not model.startswith("gemini-3"):
            return None
        failure = signature_failure(body["contents"])
        return self._invalid(failure) if failure else None

    async def _generate(self, request: Request) -> Response:
        body = await self._record(request)
        model, _, method = request.path_params["target"].partition(":")
        failure = self._auth_failure(request)
        if failure is None and method not in ("generateContent", "streamGenerateContent"):
            return JSONResponse(
                {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, status_code=404
            )
        failure = failure or self._validate(body) or self._validate_signatures(model, body)
        if failure is not None:
            return failure
        scenario = self.next()
        if scenario.error:
            return ERRORS[scenario.error].response()
        headers = {"x-goog-request-id": "emu-0001", "server-timing": "gfet4t7; dur=412"}
        if method == "streamGenerateContent" and request.query_params.get("alt") == "sse":
            frames = stream_bytes(scenario, body, model)
            return Playback(frames, scenario, self, media_type="text/event-stream", headers=headers)
        if method == "streamGenerateContent":
            payload = json.dumps(stream_chunks(scenario, body, model)).encode()
        else:
            payload = json.dumps(generate_response(scenario, body, model)).encode()
        half = len(payload) // 2
        return Playback(
            [payload[:half], payload[half:]], scenario, self, media_type="application/json", headers=headers
        )
