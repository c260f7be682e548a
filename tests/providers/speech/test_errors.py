"""Every speech error dialect falls back on the same HTTP status table as the chat adapters.

The two tables once disagreed (a bare 529, Anthropic's "overloaded", was a server error for
speech); with one table a status the body does not explain means the same thing on every wire.
"""

from __future__ import annotations

import pytest

from providers.adapters.openai_errors import classify_error
from providers.contract import HTTP_STATUS_CLASSES, ErrorClass, error_class_for_status
from providers.speech.errors import elevenlabs_error, openai_audio_error

# A proxy's page says nothing a dialect could read, so only the status is left to decide.
EDGE_PAGE = b"<html><body>upstream unavailable</body></html>"
STATUSES = sorted({*HTTP_STATUS_CLASSES, 418, 451, 520, 599})


@pytest.mark.parametrize("status", STATUSES)
def test_speech_and_chat_read_a_bare_status_alike(status: int) -> None:
    chat = classify_error(status, EDGE_PAGE, {}, "openrouter")
    eleven = elevenlabs_error(status, {}, EDGE_PAGE, provider="elevenlabs:org")
    openai = openai_audio_error(status, {}, EDGE_PAGE, provider="speechbox:main")
    assert chat.error_class is eleven.error_class is openai.error_class is error_class_for_status(status)


def test_bare_529_is_overloaded_on_every_speech_wire() -> None:
    assert elevenlabs_error(529, {}, EDGE_PAGE, provider="p").error_class is ErrorClass.OVERLOADED
    assert openai_audio_error(529, {}, EDGE_PAGE, provider="p").error_class is ErrorClass.OVERLOADED
