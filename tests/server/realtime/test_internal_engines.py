"""Which built-in STT serves (Whisper, or pocketsphinx without its model), said at start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.realtime.runtime import internal_engine_names, warn_if_whisper_missing
from server.settings import Settings
from voice.models import MODEL_FILES


def settings_with(model_dir: Path) -> Settings:
    return Settings(data_dir=model_dir.parent, voice_whisper_model_dir=model_dir)


def test_whisper_serves_when_its_model_is_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = tmp_path / "whisper-base"
    model.mkdir()
    for name in MODEL_FILES:
        (model / name).write_bytes(b"")
    settings = settings_with(model)
    assert internal_engine_names(settings) == {
        "stt": "internal:whisper",
        "tts": "internal:espeak",
        "whisper_model": "present",
    }
    with caplog.at_level(logging.WARNING, logger="patchbay.voice"):
        warn_if_whisper_missing(settings)
    assert not caplog.records


def test_a_missing_model_is_warned_about_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_with(tmp_path / "nowhere")
    assert internal_engine_names(settings)["stt"] == "internal:pocketsphinx"
    with caplog.at_level(logging.WARNING, logger="patchbay.voice"):
        warn_if_whisper_missing(settings)
    (record,) = caplog.records
    assert "pocketsphinx" in record.getMessage() and "python -m voice.models" in record.getMessage()
