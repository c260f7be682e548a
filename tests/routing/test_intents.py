from __future__ import annotations

from providers.contract import Capability
from providers.types import (
    AudioPart,
    ChatRequest,
    ImagePart,
    JsonObjectFormat,
    Message,
    Role,
    TextPart,
    ToolSpec,
)
from routing.intents import INTENT_CAPABILITIES, Intent, request_needs, required_capabilities


def test_every_intent_has_capabilities() -> None:
    assert set(INTENT_CAPABILITIES) == set(Intent)
    assert required_capabilities(Intent.VISION) == {Capability.TEXT, Capability.VISION}
    assert required_capabilities(Intent.STT) == {Capability.STT}


def test_request_needs_read_from_content() -> None:
    plain = ChatRequest(model="m", messages=(Message(Role.USER, (TextPart("hi"),)),))
    assert request_needs(plain) == {Capability.TEXT}
    rich = ChatRequest(
        model="m",
        messages=(Message(Role.USER, (ImagePart("data:image/png;base64,AA=="), AudioPart("AA==", "wav"))),),
        tools=(ToolSpec("f"),),
        response_format=JsonObjectFormat(),
    )
    assert request_needs(rich) == {
        Capability.TEXT,
        Capability.VISION,
        Capability.AUDIO_IN,
        Capability.TOOLS,
        Capability.JSON,
    }
    assert required_capabilities(Intent.CHAT, request_needs(rich)) >= {Capability.VISION, Capability.TOOLS}
