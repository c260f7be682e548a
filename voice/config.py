"""A voice session's settings (what `session.update` changes) and its hard limits."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from providers.types import ToolChoice, ToolSpec
from voice.audio import PCM16_24K, AudioFormat
from voice.endpointing import TurnDetectionConfig

MODALITIES = frozenset({"audio", "text"})


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call. `parameters` is its JSON Schema kept as JSON text, so
    the settings stay hashable; `spec()` gives the provider-neutral tool."""

    name: str
    description: str = ""
    parameters: str = "{}"

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, orjson.loads(self.parameters))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """`turn_detection=None` is manual mode: the client commits and asks for responses."""

    instructions: str | None = None
    input_format: AudioFormat = PCM16_24K
    output_format: AudioFormat = PCM16_24K
    voice: str | None = None
    turn_detection: TurnDetectionConfig | None = TurnDetectionConfig()
    create_response: bool = True
    interrupt_response: bool = True
    modalities: tuple[str, ...] = ("audio",)
    language: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = "auto"

    def __post_init__(self) -> None:
        if not self.modalities or not set(self.modalities) <= MODALITIES:
            raise ValueError(f"modalities must be a non-empty subset of {sorted(MODALITIES)}")
        if len({tool.name for tool in self.tools}) != len(self.tools):
            raise ValueError("tool names must be unique")

    @property
    def speaks(self) -> bool:
        return "audio" in self.modalities


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_buffer_seconds: float = 60.0
    """Input audio held for one turn; server VAD ends a longer turn, manual mode refuses more."""
    max_history_items: int = 200
    min_commit_ms: int = 100
    """A manual commit of less audio than this is refused as empty."""

    def __post_init__(self) -> None:
        if self.max_buffer_seconds <= 0 or self.max_history_items < 1 or self.min_commit_ms < 0:
            raise ValueError("voice session limits must be positive")
