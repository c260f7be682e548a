"""What a voice session needs from the routed LLM, as a small protocol.

The server wires this to the same router chat uses (intent `voice_turn`); tests use an
in-memory fake. The session only sees normalised stream events and, once the stream has
started, who served it, so it can bill the LLM segment to the right connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from providers.contract import BillingSource
from providers.types import ChatRequest, StreamEvent


@dataclass(frozen=True, slots=True)
class ServedBy:
    provider: str
    model: str | None
    billing_source: BillingSource
    profile_id: str | None = None
    connection_id: str | None = None


class LLMStream(Protocol):
    served: ServedBy | None
    """Filled in by the time the first event is yielded (None if no attempt succeeded)."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...


class TurnLLM(Protocol):
    records_usage: bool
    """True when the LLM side already writes the usage record (the router does); the
    session then records only the STT and TTS segments."""

    def stream(self, request: ChatRequest, *, turn_id: str) -> LLMStream:
        """Stream one response. `request.model` is the route the client asked for; `turn_id`
        ties the LLM's usage record to the turn's STT and TTS records."""
        ...
