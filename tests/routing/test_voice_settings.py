"""An agent's voice settings: validation naming the field, clearing, and tolerant reading."""

from __future__ import annotations

import pytest

from foundation.errors import RequestError
from routing.voice_settings import (
    MAX_INSTRUCTIONS_BYTES,
    VoiceSettings,
    apply_changes,
    from_stored,
    normalize_language,
    stored_with,
)


def test_changes_are_validated_and_normalized() -> None:
    settings = apply_changes(
        VoiceSettings(),
        {
            "voice": "  alloy ",
            "instructions": "You are Ada.\n",
            "language": "en-us",
            "output_format": "G711_ULAW",
        },
    )
    assert settings == VoiceSettings("alloy", "You are Ada.\n", "en-US", "g711_ulaw")
    assert settings.to_stored() == {
        "voice": "alloy",
        "instructions": "You are Ada.\n",
        "language": "en-US",
        "output_format": "g711_ulaw",
    }


def test_none_keeps_a_field_and_an_empty_string_clears_it() -> None:
    current = VoiceSettings("alloy", "Be brief.", "fr", "pcm16")
    changed = apply_changes(
        current, {"voice": "", "instructions": None, "language": "  ", "output_format": None}
    )
    assert changed == VoiceSettings(None, "Be brief.", None, "pcm16")
    assert changed.to_stored() == {"instructions": "Be brief.", "output_format": "pcm16"}
    assert apply_changes(changed, {"instructions": "", "output_format": ""}).empty


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"voice": "v" * 129}, "voice_settings.voice"),
        ({"voice": "bad\nvoice"}, "voice_settings.voice"),
        ({"instructions": "x" * (MAX_INSTRUCTIONS_BYTES + 1)}, "voice_settings.instructions"),
        ({"instructions": "é" * (MAX_INSTRUCTIONS_BYTES // 2 + 1)}, "voice_settings.instructions"),
        ({"language": "english"}, "voice_settings.language"),
        ({"language": "en_US"}, "voice_settings.language"),
        ({"output_format": "mp3"}, "voice_settings.output_format"),
        ({"speed": "2"}, "voice_settings.speed"),
    ],
)
def test_a_bad_value_names_its_field(changes: dict[str, str], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        apply_changes(VoiceSettings(), changes)
    assert caught.value.param == param


def test_limits_are_inclusive() -> None:
    settings = apply_changes(
        VoiceSettings(), {"voice": "v" * 128, "instructions": "x" * MAX_INSTRUCTIONS_BYTES}
    )
    assert settings.voice == "v" * 128 and len(settings.instructions or "") == MAX_INSTRUCTIONS_BYTES


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("EN", "en"), ("en-gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"), ("yue", "yue")],
)
def test_language_codes_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_language(raw) == normalized


def test_stored_values_that_no_longer_validate_become_warnings() -> None:
    warnings: list[str] = []
    settings = from_stored(
        {"voice": "nova", "output_format": "opus", "language": 7, "other": "kept"}, warnings
    )
    assert settings == VoiceSettings(voice="nova")
    assert sorted(warnings) == [
        "voice setting language is not valid and is ignored",
        "voice setting output_format is not valid and is ignored",
    ]
    assert from_stored(None) == VoiceSettings()


def test_storing_keeps_other_settings() -> None:
    stored = stored_with({"voice": "old", "language": "de", "other": 1}, VoiceSettings(voice="new"))
    assert stored == {"other": 1, "voice": "new"}
