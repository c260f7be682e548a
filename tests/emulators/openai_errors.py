"""Exact error responses of OpenAI and OpenAI-compatible servers.

`ERRORS[flavor][kind]` is a `Scenario` with the vendor's status, body and headers. A body
string containing `{key}` echoes the caller's key back, as some providers do in 401s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.emulators.openai_wire import Flavor, Scenario, fail

_RATE = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "2s",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "0",
    "x-ratelimit-reset-tokens": "6m0s",
}


def openai_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openrouter_body(code: int, message: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata:
        error["metadata"] = dict(metadata)
    return {"error": error}


def mistral_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": None, "code": code}


def xai_body(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "error": message}


def kimi_body(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_}}


def rate_limited(retry_after: float = 2, *, flavor: Flavor = "openai") -> Scenario:
    """429 with `retry-after` seconds, in the flavour's body shape."""
    headers = {"retry-after": f"{retry_after:g}"}
    if flavor == "openrouter":
        return fail(429, openrouter_body(429, "Rate limit exceeded: free-models-per-min."), headers)
    if flavor == "kimi":
        return fail(
            429,
            kimi_body(
                "Your account reached max request: 3, please try again after 1 seconds",
                "rate_limit_reached_error",
            ),
            headers,
        )
    if flavor == "mistral":
        return fail(429, mistral_body("Requests rate limit exceeded", "rate_limit_error", "1300"), headers)
    if flavor == "xai":
        return fail(429, xai_body("Some resource has been exhausted", "Too many requests"), headers)
    message = "Rate limit reached for gpt-4o-mini in organization org-emu on requests per min (RPM): Limit 500, Used 500, Requested 1."
    return fail(429, openai_body(message, "requests", "rate_limit_exceeded"), headers | _RATE)


def auth_error(flavor: Flavor) -> Scenario:
    return ERRORS[flavor]["auth"]


_CONTEXT_OPENAI = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. "
    "Please reduce the length of the messages."
)

ERRORS: Mapping[Flavor, Mapping[str, Scenario]] = {
    "openai": {
        "auth": fail(
            401,
            openai_body(
                "Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            ),
        ),
        "permission": fail(
            403,
            openai_body(
                "Country, region, or territory not supported",
                "request_forbidden",
                "unsupported_country_region_territory",
            ),
        ),
        "not_found": fail(
            404,
            openai_body(
                "The model `gpt-9` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        ),
        "rate_limit": rate_limited(2),
        "rate_limit_ms": fail(
            429,
            openai_body("Rate limit reached", "tokens", "rate_limit_exceeded"),
            {"retry-after-ms": "750"} | _RATE,
        ),
        "quota_exhausted": fail(
            429,
            openai_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
        ),
        "context_length": fail(
            400, openai_body(_CONTEXT_OPENAI, "invalid_request_error", "context_length_exceeded", "messages")
        ),
        "invalid_request": fail(
            400,
            openai_body(
                "Invalid value for 'temperature': must be <= 2.",
                "invalid_request_error",
                "invalid_value",
                "temperature",
            ),
        ),
        "server_error": fail(
            500,
            openai_body(
                "The server had an error while processing your request. Sorry about that!", "server_error"
            ),
        ),
        "overloaded": fail(
            503,
            openai_body(
                "The engine is currently overloaded, please try again later.", "server_error", "slow_down"
            ),
        ),
    },
    "openrouter": {
        "auth": fail(401, openrouter_body(401, "No auth credentials found")),
        "invalid_request": fail(
            400,
            openrouter_body(400, "Provider returned error", {"provider_name": "OpenAI", "raw": "bad param"}),
        ),
        "not_found": fail(400, openrouter_body(400, "openai/gpt-9 is not a valid model ID")),
        "context_length": fail(
            400,
            openrouter_body(
                400,
                "This endpoint's maximum context length is 128000 tokens. However, you requested about 140000 tokens.",
            ),
        ),
        "quota_exhausted": fail(
            402,
            openrouter_body(
                402,
                "Insufficient credits. Add more using https://openrouter.ai/credits",
                {"limit_source": "account"},
            ),
        ),
        "content_filter": fail(
            403,
            openrouter_body(
                403,
                "Input was flagged by moderation",
                {
                    "reasons": ["harassment"],
                    "flagged_input": "...",
                    "provider_name": "OpenAI",
                    "model_slug": "openai/gpt-4o",
                },
            ),
        ),
        "timeout": fail(408, openrouter_body(408, "Request timed out")),
        "rate_limit": rate_limited(2, flavor="openrouter"),
        "server_error": fail(
            502,
            openrouter_body(
                502, "Provider returned error", {"provider_name": "OpenAI", "raw": "upstream 500"}
            ),
        ),
        "overloaded": fail(
            503, openrouter_body(503, "No endpoints found that can handle the requested parameters.")
        ),
    },
    "mistral": {
        "auth": fail(401, mistral_body("Unauthorized", "authentication_error")),
        "invalid_request": fail(
            422, mistral_body("Input should be a valid integer", "invalid_request_error", "2203")
        ),
        "context_length": fail(
            400,
            mistral_body(
                "Prompt contains 40000 tokens, too large for model with 32768 maximum context length",
                "invalid_request_error",
            ),
        ),
        "rate_limit": rate_limited(2, flavor="mistral"),
        "server_error": fail(500, mistral_body("Internal server error", "server_error")),
    },
    "xai": {
        "auth": fail(
            400,
            xai_body(
                "Client specified an invalid argument",
                "Incorrect API key provided: {key}. You can obtain an API key from https://console.x.ai.",
            ),
        ),
        "invalid_request": fail(
            400,
            xai_body(
                "Client specified an invalid argument",
                "Argument not supported on this model: presencePenalty",
            ),
        ),
        "not_found": fail(
            404,
            xai_body(
                "Some requested entity was not found",
                "The model grok-9 does not exist or your team does not have access to it.",
            ),
        ),
        "rate_limit": rate_limited(2, flavor="xai"),
    },
    "kimi": {
        "auth": fail(401, kimi_body("Invalid Authentication", "invalid_authentication_error")),
        "quota_exhausted": fail(
            403,
            kimi_body(
                "Your account is suspended, please check your plan and billing details",
                "exceeded_current_quota_error",
            ),
        ),
        "overloaded": fail(
            429,
            kimi_body(
                "The engine is currently overloaded, please try again later", "engine_overloaded_error"
            ),
        ),
        "rate_limit": rate_limited(1, flavor="kimi"),
        "context_length": fail(
            400,
            kimi_body(
                "Invalid request: Your request exceeded model token limit: 262144 (requested: 269030)",
                "invalid_request_error",
            ),
        ),
        "server_error": fail(500, kimi_body("Internal server error", "server_error")),
    },
    "compat": {
        "auth": fail(
            401,
            {"error": {"message": "Unauthorized: invalid key {key}", "type": "Unauthorized", "code": 401}},
        ),
        "context_length": fail(
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        "context_length_llamacpp": fail(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
        ),
        "not_found": fail(
            404,
            {
                "error": {
                    "message": 'model "llama9" not found, try pulling it first',
                    "type": "api_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        "invalid_request": fail(
            400,
            {
                "error": {
                    "message": "tools require --enable-auto-tool-choice",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
        ),
        "server_error": fail(500, b"Internal Server Error"),
        "bad_gateway": fail(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        "overloaded": fail(
            503, {"error": {"message": "Service Unavailable", "type": "ServiceUnavailableError", "code": 503}}
        ),
        "timeout": fail(504, b"<html><body>504 Gateway Time-out</body></html>"),
    },
}
