"""ChatRequest → Anthropic Messages request body. Pure; no I/O.

Decisions worth knowing:
- Every system message, wherever it sits in the history, is hoisted into the top-level `system`
  string (joined by blank lines): the Messages API has no system role.
- Consecutive turns of the same wire role are merged; tool results become `tool_result` blocks in
  a user turn, so a run of tool messages (and a following user message) is a single user turn.
- `max_tokens` is required by the API; without a caller value we send `DEFAULT_MAX_TOKENS`.
- Sampling parameters are sent only under API version 2023-06-01; 2026-10-21 rejects them.
- Structured output uses the universal forced-tool technique: one extra tool whose `input_schema`
  is the target schema, chosen with `tool_choice: {type: "tool"}`. Its name is returned in
  `WireRequest.structured_tool` so the response side knows which block is the answer.
- Reasoning: an assistant turn's `thinking` / `redacted_thinking` blocks are replayed unmodified,
  first in the turn (where the API requires them before tool use), but only when they came from
  this same origin; foreign artifacts and readable reasoning text are not sent. A
  `ReasoningConfig` becomes `thinking: {type: "enabled", budget_tokens}`; the budget must be at
  least `MIN_THINKING_BUDGET` and below `max_tokens`, so a request whose `max_tokens` leaves no
  room is sent without thinking, and `temperature` is never sent with thinking (the API allows
  only the default).
- Thinking is also left out where the API would refuse it, so that asking for reasoning never
  turns a request that works into a 400: when `tool_choice` forces tool use (`required`, a named
  tool, or structured output, which is a forced tool), since the forced call is the caller's
  contract and reasoning only a preference; and when the request answers the tool calls of an
  assistant turn that has no thinking block of this origin to replay (a conversation that began
  on another provider, or a turn made without thinking), since the API demands one there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from providers.contract import ANTHROPIC_VERSION, ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.types import (
    AudioPart,
    ChatRequest,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    ReasoningConfig,
    RedactedThinking,
    Role,
    TextPart,
    ThinkingBlock,
    ToolSpec,
    reasoning_origin,
)

from .media_wire import parse_data_url
from .turns_wire import append_turn, history_arguments, invalid_request

ANTHROPIC_VERSION_2026 = "2026-10-21"
SAMPLING_VERSION = ANTHROPIC_VERSION
"""The only API version that still accepts temperature / top_p / top_k."""

DEFAULT_MAX_TOKENS = 4096
"""Sent when the caller sets no limit: the smallest documented max output of current Claude models."""

ORIGIN = reasoning_origin(WireProtocol.ANTHROPIC_MESSAGES, ProviderId.ANTHROPIC)
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking budget per OpenAI-style effort; `medium` is also the budget when none is given."""

_TOOL_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]")
_EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WireRequest:
    body: JSON
    structured_tool: str | None
    """The forced tool carrying structured output, if the request asked for it."""


def _invalid(message: str, model: str) -> ProviderError:
    return invalid_request(ProviderId.ANTHROPIC, message, model)


def _image_block(part: ImagePart) -> JSON:
    inline = parse_data_url(part.url)
    if inline is not None:
        source: JSON = {"type": "base64", "media_type": inline.media_type, "data": inline.data_b64}
    else:
        source = {"type": "url", "url": part.url}
    return {"type": "image", "source": source}


def _content_blocks(message: Message, model: str) -> list[JSON]:
    blocks: list[JSON] = []
    for part in message.content:
        if isinstance(part, TextPart):
            # The API rejects empty text blocks.
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part))
        elif isinstance(part, AudioPart):
            raise _invalid("anthropic-messages does not accept audio input", model)
    return blocks


def _tool_use_blocks(message: Message, model: str) -> list[JSON]:
    return [
        {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": history_arguments(call, ProviderId.ANTHROPIC, model),
        }
        for call in message.tool_calls
    ]


def _tool_result_block(message: Message, model: str) -> JSON:
    if not message.tool_call_id:
        raise _invalid("a tool message needs tool_call_id", model)
    blocks = _content_blocks(message, model)
    content: str | list[JSON] = message.text if all(b["type"] == "text" for b in blocks) else blocks
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}


def thinking_blocks(message: Message, origin: str) -> list[JSON]:
    """The turn's own thinking blocks, exactly as the API sent them."""
    blocks: list[JSON] = []
    for artifact in message.reasoning.bound_to(origin):
        if isinstance(artifact, ThinkingBlock):
            blocks.append(
                {"type": "thinking", "thinking": artifact.thinking, "signature": artifact.signature}
            )
        elif isinstance(artifact, RedactedThinking):
            blocks.append({"type": "redacted_thinking", "data": artifact.data})
    return blocks


def _wire_turn(message: Message, model: str, origin: str) -> tuple[str, list[JSON]]:
    if message.role is Role.USER:
        return "user", _content_blocks(message, model)
    if message.role is Role.TOOL:
        return "user", [_tool_result_block(message, model)]
    blocks = _content_blocks(message, model)
    if message.reasoning.artifacts:  # most turns of a history carry no reasoning to replay
        blocks = thinking_blocks(message, origin) + blocks
    if message.tool_calls:
        blocks += _tool_use_blocks(message, model)
    return "assistant", blocks


def build_messages(request: ChatRequest, origin: str = ORIGIN) -> tuple[str | None, list[JSON]]:
    """The top-level `system` text and the alternating `messages` list."""
    system_texts: list[str] = []
    turns: list[JSON] = []
    for message in request.messages:
        if message.role is Role.SYSTEM:
            if message.text:
                system_texts.append(message.text)
            continue
        role, blocks = _wire_turn(message, request.model, origin)
        append_turn(turns, role, "content", blocks)
    return ("\n\n".join(system_texts) or None), turns


def thinking_config(config: ReasoningConfig | None, max_tokens: int) -> JSON | None:
    """`thinking` for the body, or None when not asked for or `max_tokens` leaves no room."""
    if config is None:
        return None
    budget = config.budget_tokens or EFFORT_BUDGETS[config.effort or "medium"]
    budget = min(max(budget, MIN_THINKING_BUDGET), max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _tool(spec: ToolSpec) -> JSON:
    tool: JSON = {"name": spec.name, "input_schema": dict(spec.parameters) or dict(_EMPTY_OBJECT_SCHEMA)}
    if spec.description:
        tool["description"] = spec.description
    if spec.strict:
        tool["strict"] = True
    return tool


def _structured_tool(request: ChatRequest) -> JSON | None:
    fmt = request.response_format
    if isinstance(fmt, JsonSchemaFormat):
        name = _TOOL_NAME_RE.sub("_", fmt.name)[:64] or "structured_output"
        tool: JSON = {
            "name": name,
            "description": fmt.description or "Respond by calling this tool with the answer as its input.",
            "input_schema": dict(fmt.schema),
        }
        return tool
    if isinstance(fmt, JsonObjectFormat):
        return {
            "name": "json_output",
            "description": "Respond by calling this tool with the answer as a JSON object.",
            "input_schema": {"type": "object"},
        }
    return None


def _tool_choice(request: ChatRequest) -> JSON | None:
    choice = request.tool_choice
    wire: JSON | None
    if choice is None:
        wire = None
    elif isinstance(choice, NamedToolChoice):
        wire = {"type": "tool", "name": choice.name}
    else:
        wire = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if request.parallel_tool_calls is False and (wire is None or wire["type"] != "none"):
        wire = dict(wire or {"type": "auto"})
        wire["disable_parallel_tool_use"] = True
    return wire


def build_request(
    request: ChatRequest, *, version: str = ANTHROPIC_VERSION, origin: str = ORIGIN
) -> WireRequest:
    """The JSON body for `POST /v1/messages` (without `stream`) and the structured-output tool name.

    `version` is the `anthropic-version` header the caller will send; it decides whether
    sampling parameters may be included. `origin` is the endpoint's reasoning origin: only
    thinking blocks from it are replayed.
    """
    system, messages = build_messages(request, origin)
    max_tokens = request.max_output_tokens or DEFAULT_MAX_TOKENS
    body: JSON = {"model": request.model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    user_id = request.metadata.get("user_id")
    if user_id:
        body["metadata"] = {"user_id": user_id}

    tools = [_tool(spec) for spec in request.tools]
    structured = _structured_tool(request)
    tool_choice = _tool_choice(request) if tools else None
    if structured is not None:
        if any(t["name"] == structured["name"] for t in tools):
            raise _invalid("the response format name collides with a tool name", request.model)
        tools.append(structured)
        tool_choice = {"type": "tool", "name": structured["name"]}
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        body["tool_choice"] = tool_choice

    thinking = thinking_config(request.reasoning, max_tokens)
    if thinking is not None and _thinking_refused(messages, tool_choice):
        thinking = None
    if thinking is not None:
        body["thinking"] = thinking
    if request.temperature is not None and version == SAMPLING_VERSION and thinking is None:
        # Our scale is OpenAI's 0–2; Anthropic accepts 0–1.
        body["temperature"] = min(max(request.temperature, 0.0), 1.0)
    return WireRequest(body=body, structured_tool=structured["name"] if structured else None)


def _thinking_refused(messages: list[JSON], tool_choice: JSON | None) -> bool:
    """Whether the API would answer 400 to this body with `thinking` enabled (see the module doc)."""
    if tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        return True
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return False
    content = messages[last]["content"]
    answered = any(b["type"] == "tool_result" for m in messages[last + 1 :] for b in m["content"])
    uses_tools = any(b["type"] == "tool_use" for b in content)
    return answered and uses_tools and content[0]["type"] not in ("thinking", "redacted_thinking")
