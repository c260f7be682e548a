"""An openai SDK chat stream put back together the way a client keeps the assistant's turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk


@dataclass
class StreamedTurn:
    reasoning: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def assistant_message(self) -> dict[str, Any]:
        """The turn as the assistant message to send back, its reasoning fields included."""
        return {
            "role": "assistant",
            "content": None,
            "reasoning_content": self.reasoning,
            "reasoning_details": self.details,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for _, c in sorted(self.calls.items())
            ],
        }


async def collect(stream: AsyncStream[ChatCompletionChunk]) -> StreamedTurn:
    """Concatenate `reasoning_content` pieces, append `reasoning_details`, assemble tool calls."""
    turn = StreamedTurn()
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        turn.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        turn.details += (delta.model_extra or {}).get("reasoning_details") or []
        for call in delta.tool_calls or ():
            entry = turn.calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    return turn
