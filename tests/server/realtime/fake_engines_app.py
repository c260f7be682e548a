"""An app factory for `patchbay serve`-like child processes whose built-in STT and TTS are the
in-tree fakes (instant transcript, a tone), so a multi-process voice test needs no models."""

from __future__ import annotations

from fastapi import FastAPI

from routing.speech import BuiltIn
from server.app import create_app
from server.services import Overrides, Services
from server.settings import Settings
from tests.voice.fakes import FakeSTT, FakeTTS

SERVE = (
    "from server.serve import run; from server.settings import Settings; "
    "run(Settings(), app='tests.server.realtime.fake_engines_app:app')"
)
"""What `tests.server.v1.platform_billing.Served(code=SERVE)` runs."""


def app() -> FastAPI:
    settings = Settings()
    builtin = BuiltIn(
        stt=FakeSTT("internal:whisper", text="when does the pharmacy close"),
        tts=FakeTTS("internal:espeak", sample_rate=24_000, chunks=4, chunk_ms=40),
    )
    return create_app(
        settings, services=Services.build(settings, overrides=Overrides(internal_engines=builtin))
    )
