"""Scenarios and the pure wire builders of the OpenAI emulator.

`Scenario` scripts one answer; `Wire(flavor)` turns it into the JSON a real server of that
flavour sends (a `chat.completion`, or the list of `chat.completion.chunk`s). Nothing here
does I/O, so fidelity tests validate these outputs directly against the SDK's models.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from tests.emulators import openrouter_reasoning

Flavor = Literal["openai", "openrouter", "mistral", "kimi", "xai", "compat"]

CHAT_PATHS = ("/v1/chat/completions", "/api/v1/chat/completions")
MODEL_PATHS = ("/v1/models", "/api/v1/models")


@dataclass(frozen=True)
class ToolCallSpec:
    name: str
    arguments: str
    """The exact JSON text the "model" produces."""


@dataclass(frozen=True)
class Scenario:
    """One scripted answer. Content fields describe a healthy reply; the rest inject faults.

    Fault positions count body frames: SSE events when streaming, and two halves of the
    JSON body otherwise.
    """

    text: str = "Hello! How can I help you today?"
    tool_calls: tuple[ToolCallSpec, ...] = ()
    refusal: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    interleave: bool = True
    status: int = 200
    error_body: Any = None
    """JSON-able body (or raw `bytes`) sent instead of a reply, with `status`; `{key}` becomes the caller's key."""
    headers: Mapping[str, str] = field(default_factory=dict)
    first_byte_delay: float = 0.0
    body_delay: float = 0.0
    """Between the response headers and the first body frame."""
    chunk_delay: float = 0.0
    stall_after: int | None = None
    drop_after: int | None = None
    truncate_after: int | None = None
    malformed_after: int | None = None
    ignore_stream: bool = False
    """Answer a streaming request with one JSON body, as some compatible servers do."""
    error_after: int | None = None
    stream_error: Mapping[str, Any] | None = None
    """The in-stream error object sent at `error_after` (HTTP 200 already sent)."""
    reasoning_content: str | None = None
    """A thinking model's reasoning, streamed before the content: `message.reasoning_content`, or
    in the `openrouter` flavour `reasoning` with `reasoning_details` (which it also sends, with a
    default text, when the request asks for reasoning; tests/emulators/openrouter_reasoning.py)."""

    @property
    def healthy(self) -> bool:
        faults = (
            self.stall_after,
            self.drop_after,
            self.truncate_after,
            self.malformed_after,
            self.error_after,
        )
        return all(f is None for f in faults) and not (
            self.first_byte_delay or self.body_delay or self.chunk_delay
        )


def text(value: str = "Hello! How can I help you today?", **kw: Any) -> Scenario:
    return Scenario(text=value, **kw)


def json_reply(value: Any, **kw: Any) -> Scenario:
    return Scenario(text=orjson.dumps(value).decode(), **kw)


def tool_calls(*calls: tuple[str, Any], **kw: Any) -> Scenario:
    specs = tuple(ToolCallSpec(n, a if isinstance(a, str) else orjson.dumps(a).decode()) for n, a in calls)
    return Scenario(text="", tool_calls=specs, **kw)


def refusal(value: str = "I'm sorry, I can't help with that.", **kw: Any) -> Scenario:
    return Scenario(text="", refusal=value, **kw)


def fail(status: int, body: Any, headers: Mapping[str, str] | None = None, **kw: Any) -> Scenario:
    return Scenario(status=status, error_body=body, headers=dict(headers or {}), **kw)


_WORDS = re.compile(r"\s*\S+|\s+")


def fragments(value: str) -> list[str]:
    """Split like a tokenizer would: words with their leading space, long words in two."""
    out: list[str] = []
    for word in _WORDS.findall(value):
        if len(word) > 6:
            out += [word[: len(word) // 2], word[len(word) // 2 :]]
        else:
            out.append(word)
    return out


def argument_fragments(arguments: str, size: int = 7) -> list[str]:
    """Tool-call JSON cut every `size` characters, mid-token, as real streams do."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _estimate_tokens(value: Any) -> int:
    return max(1, len(orjson.dumps(value)) // 4)


class _Ids:
    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def hex(self, n: int) -> str:
        return hashlib.sha256(str(next(self._counter)).encode()).hexdigest()[:n]

    def alnum9(self) -> str:
        raw = int(self.hex(16), 16)
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        return "".join(alphabet[(raw // 62**i) % 62] for i in range(9))


class Wire:
    """Pure builders of one flavour's JSON; the app only frames and sends what these return."""

    def __init__(self, flavor: Flavor) -> None:
        self.flavor = flavor
        self._ids = _Ids()

    def completion_id(self) -> str:
        return {"openrouter": "gen-", "mistral": "cmpl-"}.get(self.flavor, "chatcmpl-") + self._ids.hex(24)

    def request_id(self) -> str:
        return "req_" + self._ids.hex(16)

    def call_id(self) -> str:
        return self._ids.alnum9() if self.flavor == "mistral" else "call_" + self._ids.hex(24)

    def _envelope(self, cid: str, model: str, obj: str) -> dict[str, Any]:
        env: dict[str, Any] = {"id": cid, "object": obj, "created": 1764000000, "model": model}
        if self.flavor in ("openai", "xai"):
            env["system_fingerprint"] = "fp_" + cid[-10:]
        if self.flavor == "openai":
            env["service_tier"] = "default"
        if self.flavor == "openrouter":
            env["provider"] = "OpenAI"
        return env

    def usage(self, s: Scenario, request: Mapping[str, Any], completion: str) -> dict[str, Any]:
        prompt = s.prompt_tokens if s.prompt_tokens is not None else _estimate_tokens(request.get("messages"))
        done = s.completion_tokens if s.completion_tokens is not None else max(1, len(completion) // 4)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        }
        if self.flavor in ("openai", "openrouter", "xai"):
            usage["prompt_tokens_details"] = {"cached_tokens": s.cached_tokens, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": s.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        if self.flavor == "openrouter":
            cost = round((prompt * 0.15 + done * 0.6) / 1_000_000, 8)
            usage["cost"] = cost
            usage["cost_details"] = {"upstream_inference_cost": None}
        return usage

    @staticmethod
    def finish(s: Scenario) -> str:
        return s.finish_reason or ("tool_calls" if s.tool_calls else "stop")

    def _choice_extras(self, s: Scenario) -> dict[str, Any]:
        return {"native_finish_reason": self.finish(s)} if self.flavor == "openrouter" else {}

    def reasoning(self, s: Scenario, request: Mapping[str, Any]) -> str | None:
        """What the model thinks: the scenario's reasoning, or OpenRouter's default when asked."""
        if s.reasoning_content or self.flavor != "openrouter":
            return s.reasoning_content
        asked = openrouter_reasoning.asks_for_reasoning(request)
        return openrouter_reasoning.DEFAULT_REASONING if asked else None

    def completion(self, s: Scenario, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": (s.text or None) if s.refusal is None else None,
        }
        if self.flavor in ("openai", "openrouter") or s.refusal is not None:
            message["refusal"] = s.refusal
        if self.flavor == "openai":
            message["annotations"] = []
        thought = self.reasoning(s, request)
        if thought and self.flavor == "openrouter":
            message["reasoning"] = thought
            message["reasoning_details"] = openrouter_reasoning.details(model, thought)
        elif thought:
            message["reasoning_content"] = thought
        if s.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.call_id(),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in s.tool_calls
            ]
        produced = s.text + "".join(c.arguments for c in s.tool_calls) + (s.refusal or "")
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish(s)}
        body = self._envelope(self.completion_id(), model, "chat.completion")
        body["choices"] = [choice | self._choice_extras(s)]
        body["usage"] = self.usage(s, request, produced)
        return body

    def chunks(self, s: Scenario, request: Mapping[str, Any], model: str) -> list[dict[str, Any]]:
        cid = self.completion_id()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            c = self._envelope(cid, model, "chat.completion.chunk")
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if self.flavor != "mistral":
                choice["logprobs"] = None
            c["choices"] = [choice | (self._choice_extras(s) if finish else {})]
            return c

        first: dict[str, Any] = {"role": "assistant", "content": ""}
        if self.flavor in ("openai", "openrouter"):
            first["refusal"] = None
        out = [chunk(first)]
        thought = self.reasoning(s, request) or ""
        if thought and self.flavor == "openrouter":
            for piece in openrouter_reasoning.pieces(openrouter_reasoning.details(model, thought)):
                readable = piece.get("text") or piece.get("summary")
                out.append(
                    chunk(({"reasoning": readable} if readable else {}) | {"reasoning_details": [piece]})
                )
        else:
            out += [chunk({"reasoning_content": piece}) for piece in fragments(thought)]
        out += [chunk({"content": piece}) for piece in fragments(s.text)]
        if s.refusal:
            out += [chunk({"refusal": piece}) for piece in fragments(s.refusal)]
        out += [chunk({"tool_calls": [frag]}) for frag in self._tool_fragments(s)]
        final = chunk({}, self.finish(s))
        produced = s.text + "".join(c.arguments for c in s.tool_calls) + (s.refusal or "")
        usage = self.usage(s, request, produced)
        wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        if self.flavor == "kimi":
            final["choices"][0]["usage"] = usage
        elif self.flavor == "mistral":
            final["usage"] = usage
        out.append(final)
        if self.flavor == "openrouter" or (wants_usage and self.flavor in ("openai", "xai", "compat")):
            tail = self._envelope(cid, model, "chat.completion.chunk")
            tail["choices"] = []
            tail["usage"] = usage
            out.append(tail)
        return out

    def _tool_fragments(self, s: Scenario) -> list[dict[str, Any]]:
        per_call: list[list[dict[str, Any]]] = []
        for index, call in enumerate(s.tool_calls):
            frags: list[dict[str, Any]] = [
                {
                    "index": index,
                    "id": self.call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
            frags += [
                {"index": index, "function": {"arguments": a}} for a in argument_fragments(call.arguments)
            ]
            per_call.append(frags)
        if not s.interleave:
            return [f for frags in per_call for f in frags]
        return [f for group in itertools.zip_longest(*per_call) for f in group if f is not None]

    def stream_error_chunk(self, s: Scenario, model: str) -> dict[str, Any]:
        error = dict(
            s.stream_error
            or {"message": "The server had an error while processing your request.", "type": "server_error"}
        )
        if self.flavor != "openrouter":
            return {"error": error}
        c = self._envelope(self.completion_id(), model, "chat.completion.chunk")
        c["error"] = error
        c["choices"] = [
            {"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}
        ]
        return c


def missing_reasoning(flavor: Flavor, request: Mapping[str, Any]) -> dict[str, Any] | None:
    """Kimi's 400 body for a thinking model's history that lacks `reasoning_content` on a tool-call
    turn; OpenRouter's for an Anthropic thinking history without its (intact) `reasoning_details`."""
    if flavor == "openrouter":
        return openrouter_reasoning.refusal(request)
    if flavor != "kimi" or "thinking" not in str(request.get("model", "")):
        return None
    for index, message in enumerate(request.get("messages") or []):
        if (
            message.get("role") == "assistant"
            and message.get("tool_calls")
            and not message.get("reasoning_content")
        ):
            text = (
                "thinking is enabled but reasoning_content is missing in assistant tool call message "
                f"at index {index}"
            )
            return {"error": {"message": text, "type": "invalid_request_error"}}
    return None


def sse_frame(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
