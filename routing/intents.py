"""Task intents and the capabilities each one implies.

An intent names what a request is for (the routing matrix is keyed by it); the capabilities
are what a model must offer to serve it. A request can need more than its intent implies
(a `chat` request carrying an image needs vision), so the resolver takes the union.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from providers.contract import Capability
from providers.types import ChatRequest


class Intent(StrEnum):
    CHAT = "chat"
    VOICE_TURN = "voice_turn"
    VISION = "vision"
    STRUCTURED = "structured"
    TOOLS = "tools"
    SUMMARIZE = "summarize"
    STT = "stt"
    TTS = "tts"


INTENT_CAPABILITIES: Mapping[Intent, frozenset[Capability]] = MappingProxyType(
    {
        Intent.CHAT: frozenset({Capability.TEXT}),
        Intent.VOICE_TURN: frozenset({Capability.TEXT}),
        Intent.VISION: frozenset({Capability.TEXT, Capability.VISION}),
        Intent.STRUCTURED: frozenset({Capability.TEXT, Capability.JSON}),
        Intent.TOOLS: frozenset({Capability.TEXT, Capability.TOOLS}),
        Intent.SUMMARIZE: frozenset({Capability.TEXT}),
        Intent.STT: frozenset({Capability.STT}),
        Intent.TTS: frozenset({Capability.TTS}),
    }
)

FALLBACK_INTENT: Mapping[Intent, Intent] = MappingProxyType(
    {
        Intent.VOICE_TURN: Intent.CHAT,
        Intent.VISION: Intent.CHAT,
        Intent.STRUCTURED: Intent.CHAT,
        Intent.TOOLS: Intent.CHAT,
        Intent.SUMMARIZE: Intent.CHAT,
    }
)
"""Where a matrix without an entry for an intent looks next; text intents fall back to `chat`."""


def request_needs(request: ChatRequest) -> frozenset[Capability]:
    """The capabilities a chat request needs beyond text, read from its content."""
    needs = {Capability.TEXT}
    if request.needs_vision:
        needs.add(Capability.VISION)
    if request.needs_audio:
        needs.add(Capability.AUDIO_IN)
    if request.tools:
        needs.add(Capability.TOOLS)
    if request.response_format is not None:
        needs.add(Capability.JSON)
    return frozenset(needs)


def required_capabilities(
    intent: Intent, needs: frozenset[Capability] = frozenset()
) -> frozenset[Capability]:
    return INTENT_CAPABILITIES[intent] | needs
