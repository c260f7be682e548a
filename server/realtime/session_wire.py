"""`session.update` in, `session.created` / `session.updated` out, in GA or beta shape.

`apply_patch` merges a validated patch into the voice session's `SessionConfig` and raises
`WireError` (with the offending `param`) for values we cannot serve, e.g. PCM at a rate
other than 24 kHz, two tools of one name, or a `tool_choice` naming no tool.
`session_json` renders the full session back.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson

from providers.types import NamedToolChoice, ToolChoice, ToolChoiceMode
from server.realtime.wire import (
    FUNCTION_NAME,
    FormatSpec,
    FunctionToolSpec,
    ResponseSpec,
    SessionPatch,
    TurnDetectionSpec,
    WireError,
)
from voice.audio import ALAW_8K, PCM16_24K, ULAW_8K, AudioFormat
from voice.config import FunctionTool, SessionConfig
from voice.endpointing import TurnDetectionConfig

_BETA_FORMATS = {"pcm16": PCM16_24K, "g711_ulaw": ULAW_8K, "g711_alaw": ALAW_8K}
_SILENCE_BY_EAGERNESS = {"low": 800, "medium": 500, "high": 250, "auto": 500}
"""semantic_vad has no model here: its eagerness picks a fixed silence instead (documented)."""
_TOOL_CHOICE_MODES: dict[str, ToolChoiceMode] = {"auto": "auto", "none": "none", "required": "required"}


def _format(spec: FormatSpec, param: str) -> AudioFormat:
    if spec.type == "audio/pcmu":
        return ULAW_8K
    if spec.type == "audio/pcma":
        return ALAW_8K
    if spec.rate not in (None, 24_000):
        raise WireError("invalid_value", "audio/pcm is supported at 24000 Hz only", param=f"{param}.rate")
    return PCM16_24K


def _tools(specs: list[FunctionToolSpec], scope: str = "session") -> tuple[FunctionTool, ...]:
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise WireError("invalid_value", "tool names must be unique", param=f"{scope}.tools.{index}.name")
        seen.add(spec.name)
    return tuple(
        FunctionTool(spec.name, spec.description or "", orjson.dumps(spec.parameters or {}).decode())
        for spec in specs
    )


def _tool_choice(raw: Any, scope: str = "session") -> ToolChoice:
    """A mode, `{type: "function", name}` (GA), or `{type: "function", function: {name}}`
    (the beta documentation's chat-style form)."""
    param = f"{scope}.tool_choice"
    if isinstance(raw, str) and raw in _TOOL_CHOICE_MODES:
        return _TOOL_CHOICE_MODES[raw]
    if not isinstance(raw, dict):
        raise WireError(
            "invalid_value", "tool_choice must be auto, none, required or a function", param=param
        )
    if raw.get("type") != "function":
        raise WireError("invalid_value", "tool_choice can only name a function", param=f"{param}.type")
    function = raw.get("function")
    name = function.get("name") if isinstance(function, dict) else raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(FUNCTION_NAME, name):
        raise WireError("invalid_value", "tool_choice needs the name of a function", param=f"{param}.name")
    return NamedToolChoice(name)


def _turn_detection(
    spec: TurnDetectionSpec | None, config: SessionConfig, default_silence_ms: int
) -> tuple[TurnDetectionConfig | None, bool, bool]:
    if spec is None:
        return None, config.create_response, config.interrupt_response
    base = config.turn_detection or TurnDetectionConfig(silence_duration_ms=default_silence_ms)
    silence = spec.silence_duration_ms
    if spec.type == "semantic_vad":
        silence = _SILENCE_BY_EAGERNESS[spec.eagerness or "auto"]
    detection = replace(
        base,
        threshold=base.threshold if spec.threshold is None else spec.threshold,
        prefix_padding_ms=base.prefix_padding_ms
        if spec.prefix_padding_ms is None
        else spec.prefix_padding_ms,
        silence_duration_ms=base.silence_duration_ms if silence is None else silence,
    )
    create = config.create_response if spec.create_response is None else spec.create_response
    interrupt = config.interrupt_response if spec.interrupt_response is None else spec.interrupt_response
    return detection, create, interrupt


def apply_patch(
    config: SessionConfig, patch: SessionPatch, *, default_silence_ms: int = 500
) -> SessionConfig:
    sent = patch.model_fields_set
    changes: dict[str, Any] = {}
    if "instructions" in sent:
        changes["instructions"] = patch.instructions
    modalities = patch.output_modalities if "output_modalities" in sent else patch.modalities
    if modalities is not None:
        if not modalities:
            raise WireError(
                "invalid_value", "output_modalities must not be empty", param="session.output_modalities"
            )
        changes["modalities"] = tuple(dict.fromkeys(modalities))
    if patch.input_audio_format is not None:
        changes["input_format"] = _BETA_FORMATS[patch.input_audio_format]
    if patch.output_audio_format is not None:
        changes["output_format"] = _BETA_FORMATS[patch.output_audio_format]
    if patch.voice is not None:
        changes["voice"] = patch.voice
    tokens = (
        patch.max_output_tokens if patch.max_output_tokens is not None else patch.max_response_output_tokens
    )
    if tokens is not None:
        changes["max_output_tokens"] = None if tokens == "inf" else tokens
    if patch.temperature is not None:
        changes["temperature"] = patch.temperature

    detection_sent = "turn_detection" in sent
    detection = patch.turn_detection
    audio = patch.audio
    if audio is not None and audio.input is not None:
        if audio.input.format is not None:
            changes["input_format"] = _format(audio.input.format, "session.audio.input.format")
        if "turn_detection" in audio.input.model_fields_set:
            detection_sent, detection = True, audio.input.turn_detection
    if audio is not None and audio.output is not None:
        if audio.output.format is not None:
            changes["output_format"] = _format(audio.output.format, "session.audio.output.format")
        if audio.output.voice is not None:
            changes["voice"] = audio.output.voice
    if detection_sent:
        td, create, interrupt = _turn_detection(detection, config, default_silence_ms)
        changes.update(turn_detection=td, create_response=create, interrupt_response=interrupt)
    return _with_tools(config, changes, patch.tools, patch.tool_choice, "session")


def _with_tools(
    config: SessionConfig,
    changes: dict[str, Any],
    tools: list[FunctionToolSpec] | None,
    tool_choice: Any,
    scope: str,
) -> SessionConfig:
    if tools is not None:
        changes["tools"] = _tools(tools, scope)
    if tool_choice is not None:
        changes["tool_choice"] = _tool_choice(tool_choice, scope)
    merged = replace(config, **changes)
    choice = merged.tool_choice
    if isinstance(choice, NamedToolChoice) and choice.name not in {tool.name for tool in merged.tools}:
        raise WireError(
            "invalid_value", "tool_choice names a function that is not in tools", param=f"{scope}.tool_choice"
        )
    return merged


def response_config(config: SessionConfig, spec: ResponseSpec | None) -> SessionConfig:
    """The settings of one response: the session's, with what `response.create` changes for it
    alone (instructions, output modalities, tools, tool choice, token limit)."""
    if spec is None:
        return config
    changes: dict[str, Any] = {}
    if spec.instructions is not None:
        changes["instructions"] = spec.instructions
    modalities = spec.output_modalities or spec.modalities
    if modalities:
        changes["modalities"] = tuple(dict.fromkeys(modalities))
    tokens = spec.max_output_tokens if spec.max_output_tokens is not None else spec.max_response_output_tokens
    if tokens is not None:
        changes["max_output_tokens"] = None if tokens == "inf" else tokens
    return _with_tools(config, changes, spec.tools, spec.tool_choice, "response")


def _format_json(fmt: AudioFormat, beta: bool) -> Any:
    if beta:
        return {"pcm16": "pcm16", "ulaw": "g711_ulaw", "alaw": "g711_alaw"}[fmt.encoding]
    if fmt.encoding == "pcm16":
        return {"type": "audio/pcm", "rate": fmt.sample_rate}
    return {"type": "audio/pcmu" if fmt.encoding == "ulaw" else "audio/pcma"}


def _detection_json(config: SessionConfig) -> dict[str, Any] | None:
    td = config.turn_detection
    if td is None:
        return None
    return {
        "type": "server_vad",
        "threshold": td.threshold,
        "prefix_padding_ms": td.prefix_padding_ms,
        "silence_duration_ms": td.silence_duration_ms,
        "create_response": config.create_response,
        "interrupt_response": config.interrupt_response,
    }


def _tools_json(config: SessionConfig) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": orjson.loads(tool.parameters),
        }
        for tool in config.tools
    ]


def _tool_choice_json(choice: ToolChoice) -> Any:
    # The beta SDK types `tool_choice` as a string, but OpenAI's beta documentation also lets
    # a client name a function; a named choice is echoed in the GA form to either.
    return {"type": "function", "name": choice.name} if isinstance(choice, NamedToolChoice) else choice


def session_json(session_id: str, model: str, config: SessionConfig, *, beta: bool) -> dict[str, Any]:
    tokens: int | str = config.max_output_tokens if config.max_output_tokens is not None else "inf"
    if beta:
        return {
            "id": session_id,
            "object": "realtime.session",
            "model": model,
            "modalities": list(config.modalities),
            "instructions": config.instructions or "",
            "voice": config.voice or "default",
            "input_audio_format": _format_json(config.input_format, True),
            "output_audio_format": _format_json(config.output_format, True),
            "turn_detection": _detection_json(config),
            "temperature": config.temperature,
            "max_response_output_tokens": tokens,
            "tools": _tools_json(config),
            "tool_choice": _tool_choice_json(config.tool_choice),
        }
    return {
        "id": session_id,
        "object": "realtime.session",
        "type": "realtime",
        "model": model,
        "output_modalities": list(config.modalities),
        "instructions": config.instructions or "",
        "audio": {
            "input": {
                "format": _format_json(config.input_format, False),
                "turn_detection": _detection_json(config),
            },
            "output": {
                "format": _format_json(config.output_format, False),
                "voice": config.voice or "default",
            },
        },
        "max_output_tokens": tokens,
        "tools": _tools_json(config),
        "tool_choice": _tool_choice_json(config.tool_choice),
    }
