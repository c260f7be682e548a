"""ChatRequest → Gemini `generateContent` request body. Pure; no I/O.

Decisions worth knowing:
- System messages, wherever they sit, become `systemInstruction` parts.
- Roles map user → `user`, assistant → `model`; tool results are `functionResponse` parts in a
  `user` turn, and consecutive turns of the same wire role are merged, so parallel results land
  in one turn in call order. Gemini matches results to calls by name, which we resolve from
  the `tool_call_id` through the assistant turns earlier in the history.
- A tool result whose text is a JSON object is sent as the `response` object; any other text
  is wrapped as `{"output": ...}` (the key the API documents for function output).
- `data:` URLs (images, audio, PDFs) become `inlineData`; other URLs become `fileData` with
  the MIME type guessed from the URL.
- Gemini has no switch for parallel tool calls; `parallel_tool_calls` is not sent.
- Thought signatures from this same origin go back on the part they came on: a call's signature
  on that `functionCall` part, a text signature on the turn's last text part. A model turn with
  function calls whose calls carry no signature (history from another provider, or a client
  that dropped it) gets Google's documented dummy signature `DUMMY_THOUGHT_SIGNATURE` on its
  first call, which Gemini 3 accepts instead of failing with 400. Readable thought text is not
  sent back.
- A `ReasoningConfig` becomes `thinkingConfig: {includeThoughts: true, thinkingBudget}`; without
  one no thinking config is sent and the model's default applies.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any

from providers.contract import ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.types import (
    AudioPart,
    ChatRequest,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    Role,
    TextPart,
    ThoughtSignature,
    ToolSpec,
    reasoning_origin,
)

from .media_wire import audio_mime_type, parse_data_url
from .turns_wire import append_turn, history_arguments, invalid_request

JSON = dict[str, Any]

ORIGIN = reasoning_origin(WireProtocol.GEMINI_GENERATE, ProviderId.GEMINI)
DUMMY_THOUGHT_SIGNATURE = "skip_thought_signature_validator"
"""The value Google documents for function calls Gemini did not produce (ai.google.dev thought-signatures)."""
EFFORT_BUDGETS = {"minimal": 512, "low": 2048, "medium": 8192, "high": 24576}


def _invalid(message: str, model: str) -> ProviderError:
    return invalid_request(ProviderId.GEMINI, message, model)


def _image_part(part: ImagePart) -> JSON:
    inline = parse_data_url(part.url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline.media_type, "data": inline.data_b64}}
    mime, _ = mimetypes.guess_type(part.url.split("?", 1)[0])
    return {"fileData": {"mimeType": mime or "image/jpeg", "fileUri": part.url}}


def _parts(message: Message) -> list[JSON]:
    parts: list[JSON] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_part(part))
        elif isinstance(part, AudioPart):
            parts.append({"inlineData": {"mimeType": audio_mime_type(part.format), "data": part.data_b64}})
    return parts


def _model_parts(message: Message, model: str, origin: str) -> list[JSON]:
    """An assistant turn's parts, each with the thought signature it was produced with."""
    signatures = [a for a in message.reasoning.bound_to(origin) if isinstance(a, ThoughtSignature)]
    by_call = {s.tool_call_id: s.signature for s in signatures if s.tool_call_id is not None}
    text_signature = next((s.signature for s in reversed(signatures) if s.tool_call_id is None), None)
    parts = _parts(message)
    if text_signature is not None:
        last_text = next((p for p in reversed(parts) if "text" in p), None)
        if last_text is not None:
            last_text["thoughtSignature"] = text_signature
    calls: list[JSON] = []
    for call in message.tool_calls:
        part: JSON = {
            "functionCall": {"name": call.name, "args": history_arguments(call, ProviderId.GEMINI, model)}
        }
        if call.id in by_call:
            part["thoughtSignature"] = by_call[call.id]
        calls.append(part)
    if calls and not any("thoughtSignature" in c for c in calls):
        calls[0]["thoughtSignature"] = DUMMY_THOUGHT_SIGNATURE
    return parts + calls


def _function_response(message: Message, names: Mapping[str, str], model: str) -> JSON:
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise _invalid("a tool message's tool_call_id matches no earlier tool call", model)
    text = message.text
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def build_contents(request: ChatRequest, origin: str = ORIGIN) -> tuple[JSON | None, list[JSON]]:
    """`systemInstruction` (or None) and the `contents` list; `origin` picks the signatures to replay."""
    system_parts: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}
    for message in request.messages:
        if message.role is Role.SYSTEM:
            system_parts.extend(_parts(message))
            continue
        if message.role is Role.ASSISTANT:
            names.update({call.id: call.name for call in message.tool_calls})
            role, parts = "model", _model_parts(message, request.model, origin)
        elif message.role is Role.TOOL:
            role, parts = "user", [_function_response(message, names, request.model)]
        else:
            role, parts = "user", _parts(message)
        append_turn(contents, role, "parts", parts)
    system = {"parts": system_parts} if system_parts else None
    return system, contents


def _declaration(spec: ToolSpec) -> JSON:
    declaration: JSON = {"name": spec.name}
    if spec.description:
        declaration["description"] = spec.description
    if spec.parameters:
        declaration["parametersJsonSchema"] = dict(spec.parameters)
    return declaration


def _tool_config(request: ChatRequest) -> JSON | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        config: JSON = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        config = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}
    return {"functionCallingConfig": config}


def _generation_config(request: ChatRequest) -> JSON:
    config: JSON = {}
    if request.max_output_tokens is not None:
        config["maxOutputTokens"] = request.max_output_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.stop:
        config["stopSequences"] = list(request.stop)
    fmt = request.response_format
    if isinstance(fmt, JsonSchemaFormat):
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = dict(fmt.schema)
    elif isinstance(fmt, JsonObjectFormat):
        config["responseMimeType"] = "application/json"
    if request.reasoning is not None:
        budget = request.reasoning.budget_tokens or EFFORT_BUDGETS[request.reasoning.effort or "medium"]
        config["thinkingConfig"] = {"includeThoughts": True, "thinkingBudget": budget}
    return config


def build_request(request: ChatRequest, origin: str = ORIGIN) -> JSON:
    """The JSON body for `models/{model}:generateContent` (the model goes in the path)."""
    system, contents = build_contents(request, origin)
    body: JSON = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(spec) for spec in request.tools]}]
        tool_config = _tool_config(request)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    return body
