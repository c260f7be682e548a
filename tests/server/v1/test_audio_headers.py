"""docs/api.md's table of audio response headers against real responses of each endpoint.

The table is the contract a client codes against, so it is read from the doc itself: a header
added to the code but not the doc (or documented but dropped) fails here, for every response
format. Only our headers are compared: `x-request-id` and `x-patchbay-*`.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from providers.speech.pcm import wav_bytes
from tests.server.v1.conftest import Patchbay
from tests.server.v1.test_audio import install
from tests.voice.fakes import FakeSTT, FakeTTS

API_DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def documented_headers(doc: str) -> dict[str, set[str]]:
    """{endpoint: headers} from the `| header | endpoints | value |` table of the Audio section."""
    section = doc.split("\n## Audio\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for header, endpoints in re.findall(r"^\| `([a-z-]+)` \| ([a-z, ]+) \|", section, re.MULTILINE):
        for endpoint in endpoints.split(","):
            table.setdefault(endpoint.strip(), set()).add(header)
    return table


def ours(response: httpx.Response) -> set[str]:
    return {name for name in response.headers if name == "x-request-id" or name.startswith("x-patchbay-")}


def test_the_table_is_read() -> None:
    table = documented_headers(API_DOC.read_text())
    assert set(table) == {"transcriptions", "speech", "encoded speech"}
    assert (
        {"x-request-id", "x-patchbay-provider"}
        <= table["transcriptions"]
        <= table["speech"] | {"x-patchbay-cost"}
    )
    assert table["encoded speech"] == {"x-patchbay-cost"} <= table["transcriptions"]


@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json"])
async def test_transcription_headers_are_the_documented_ones(
    patchbay: Patchbay, response_format: str
) -> None:
    install(patchbay, FakeSTT("fake:stt", text="hello"), FakeTTS())
    async with patchbay.client() as client:
        response = await client.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", wav_bytes(bytes(32_000), 16_000), "audio/wav")},
            data={"model": "whisper-1", "response_format": response_format},
        )
    assert response.status_code == 200, response.text
    assert ours(response) == documented_headers(API_DOC.read_text())["transcriptions"]
    assert response.headers["x-patchbay-provider"] == "fake:stt"


@pytest.mark.parametrize("response_format", ["pcm", "wav", "flac"])  # streamed, streamed, encoded
async def test_speech_headers_are_the_documented_ones(patchbay: Patchbay, response_format: str) -> None:
    install(patchbay, FakeSTT(), FakeTTS("fake:tts", sample_rate=24_000))
    async with patchbay.client() as client:
        response = await client.post(
            "/v1/audio/speech", json={"input": "Hello there.", "response_format": response_format}
        )
    assert response.status_code == 200, response.text
    table = documented_headers(API_DOC.read_text())
    # A streamed body's headers go before its cost is known; an encoded one's after.
    encoded = table["encoded speech"] if response_format == "flac" else set()
    assert ours(response) == table["speech"] | encoded
    assert response.headers["x-patchbay-provider"] == "fake:tts"
    assert response.headers["x-patchbay-sample-rate"] == "24000"
