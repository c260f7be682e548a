"""What the browser voice tests share: a fake microphone playing a WAV made with espeak-ng, a
Chromium that hears it, and a live Patchbay whose org talks with the internal engines.

Chromium's `--use-file-for-fake-audio-capture` plays the WAV into `getUserMedia` from the
moment the page opens the microphone, once (`%noloop`); the fake UI grants the permission.
Used by test_voice_sdk.py (the example page) and test_playground.py (the admin UI's playground).
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from providers.vault.secret import Secret
from routing.speech import BuiltIn
from server import accounts
from server.services import Overrides
from tests.server.web.conftest import CHROMIUM, Live, _require, serve, ui_settings
from tests.voice.speech import SAMPLE_RATE, speak
from voice.stt.whisper import WhisperSTT

TOKEN_SECRET = "voice-browser-test-token-secret-0123456789"


def write_wav(path: Path, *pcm: bytes) -> Path:
    """PCM16 mono 16 kHz parts (`speak`, `silence`) as one WAV file for the fake microphone."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"".join(pcm))
    return path


@asynccontextmanager
async def fake_mic_chromium(wav: Path) -> AsyncIterator[Any]:
    """A headless Chromium whose microphone plays `wav` once, permission granted, autoplay allowed."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _require(False, "the playwright package is not installed (pip install -e '.[test]')")
    _require(bool(shutil.which(CHROMIUM)), f"chromium is not installed at {CHROMIUM}")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def voice_patchbay(
    tmp_path: Path,
    engines: BuiltIn,
    llm_url: str,
    *,
    agent: str | None = None,
    drain: bool = False,
    warm: bool = True,
    **settings_: Any,
) -> AsyncIterator[tuple[Live, str, str]]:
    """A live Patchbay with the internal `engines` (the `internal_engines` fixture: Whisper,
    espeak-ng) and an org whose chat LLM is the OpenAI emulator at `llm_url` (with `agent`, an
    agent routed to it too): the server, the org's id and an API key of the org. `drain`: see
    `serve`; `warm`: have the Whisper model loaded before the first turn; `settings_`: more
    settings."""
    settings = ui_settings(
        tmp_path,
        voice_token_secret=TOKEN_SECRET,
        api_key_rate_limit="off",
        **settings_,
    )
    async with serve(settings, drain=drain, overrides=Overrides(internal_engines=engines)) as live:
        svc = live.services
        async with svc.db.session() as s:
            org = await accounts.create_org(s, "Acme Voice")
            await svc.connections().create(
                s, org.id, provider="openai", name="main", base_url=llm_url, key=Secret("sk-test-0123456789")
            )
            await svc.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
            if agent is not None:
                await svc.agents().create(s, org.id, agent, chains={"chat": ["openai/gpt-4o-mini"]})
            key = await accounts.create_api_key(s, org.id, name="web-app")
        svc.config_changed(org.id)
        stt = engines.stt
        if warm and isinstance(stt, WhisperSTT) and not stt.loaded:
            # Load the model now (once a process), so the first turn's transcription does not wait.
            await stt.transcribe(speak("Hello there."))
        yield live, org.id, key.key
