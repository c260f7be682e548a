"""Billing on `/v1/audio/*`, end to end on both databases: each request's segment holds and
settles for its audio seconds (STT) or characters and audio (TTS), says what it cost in
`x-patchbay-cost`, and is a 402 before any engine runs when the credits cannot cover it.

The engines are the built-in ones (fakes standing in for Whisper and espeak-ng), billed to the
platform at no list price: on `pro` they cost the tier's voice fee, 0.005 USD a minute.
"""

from __future__ import annotations

import math
from fractions import Fraction

import httpx
import pytest
from sqlalchemy import select, update

from billing.ledger_query import list_entries
from billing.ledger_types import Entry, EntryKind
from billing.money import format_usd
from billing.tables import UsageRecord
from foundation.orgs import Org
from providers.speech.pcm import wav_bytes
from routing.speech import BuiltIn
from server.services import Overrides
from tests.server.v1.conftest import Patchbay
from tests.voice.fakes import FakeSTT, FakeTTS

FEE_PRO = 5_000  # micro-USD per minute of platform voice on `pro`
SPEECH = {"model": "tts-1", "input": "Your table is booked.", "voice": "alloy"}


@pytest.fixture
def builtin() -> BuiltIn:
    return BuiltIn(
        stt=FakeSTT("internal:whisper", text="a table for two"),
        tts=FakeTTS("internal:espeak", sample_rate=24_000, chunks=5, chunk_ms=40),
    )


@pytest.fixture
def overrides(builtin: BuiltIn) -> Overrides:
    return Overrides(internal_engines=builtin)


def fee(seconds: float) -> int:
    return math.ceil(Fraction(repr(seconds)) * FEE_PRO / 60)


async def set_tier(patchbay: Patchbay, tier: str) -> None:
    async with patchbay.services.db.session() as s:
        await s.execute(update(Org).where(Org.id == patchbay.org_id).values(tier=tier))
    patchbay.services.config_changed(patchbay.org_id)


async def entries(patchbay: Patchbay) -> list[Entry]:
    async with patchbay.services.db.session() as s:
        return await list_entries(s, patchbay.org_id)


async def costs_recorded(patchbay: Patchbay) -> list[tuple[str, int]]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = (await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id))).all()
    return [(r.segment, r.cost_micro_usd) for r in rows]


async def transcribe(c: httpx.AsyncClient, seconds: float = 1.0) -> httpx.Response:
    audio = wav_bytes(bytes(int(16_000 * seconds) * 2), 16_000)
    return await c.post("/v1/audio/transcriptions", files={"file": ("q.wav", audio, "audio/wav")})


async def test_a_transcription_settles_its_audio_seconds_and_says_what_it_cost(patchbay: Patchbay) -> None:
    await set_tier(patchbay, "pro")
    await patchbay.services.leases.aclose()  # per-request holds (as near zero): the test reads each one
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    async with patchbay.client() as c:
        response = await transcribe(c, 1.0)
    assert response.status_code == 200 and response.json()["text"] == "a table for two"
    charged = fee(1.0)  # 1 s x 0.005 USD/min = 83.3, up: 84
    assert response.headers["x-patchbay-cost"] == format_usd(charged) == "0.000084"
    hold, settle = (await entries(patchbay))[1:]
    assert (hold.kind, hold.amount, hold.details["segment"]) == (EntryKind.HOLD, charged, "stt")
    assert (settle.kind, settle.amount, settle.hold_id) == (EntryKind.SETTLE, charged, hold.id)
    assert (await ledger.balance(patchbay.org_id)).balance == 1_000_000 - charged
    assert await costs_recorded(patchbay) == [("stt", charged)]


async def test_an_encoded_speech_settles_its_characters_and_audio_and_says_what_it_cost(
    patchbay: Patchbay,
) -> None:
    await set_tier(patchbay, "pro")
    await patchbay.services.leases.aclose()  # per-request holds (as near zero): the test reads each one
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    async with patchbay.client() as c:
        response = await c.post("/v1/audio/speech", json={**SPEECH, "response_format": "flac"})
    assert response.status_code == 200 and response.content.startswith(b"fLaC")
    # Held: the fee for the text at 10 characters a second; charged: the fee for the 0.2 s made.
    held, charged = fee(len(SPEECH["input"]) / 10), fee(0.2)
    assert (held, charged) == (175, 17)
    assert response.headers["x-patchbay-cost"] == format_usd(charged)
    hold, settle = (await entries(patchbay))[1:]
    assert (hold.kind, hold.amount, hold.details["segment"]) == (EntryKind.HOLD, held, "tts")
    assert (settle.kind, settle.amount) == (EntryKind.SETTLE, charged)
    assert await costs_recorded(patchbay) == [("tts", charged)]


async def test_a_streamed_speech_is_settled_before_its_body_ends(patchbay: Patchbay) -> None:
    await set_tier(patchbay, "pro")
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    async with patchbay.client() as c:
        response = await c.post("/v1/audio/speech", json={**SPEECH, "response_format": "pcm"})
    assert response.status_code == 200 and len(response.content) == 24_000 * 2 * 200 // 1000
    # Its headers went before its cost was known; the body ended after the settle was journaled
    # (served from the server's credit lease), which the flush writes into the ledger.
    assert "x-patchbay-cost" not in response.headers
    await patchbay.services.leases.flush()
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (1_000_000 - fee(0.2), 0)


async def test_audio_the_credits_cannot_cover_is_402_before_any_engine_runs(
    patchbay: Patchbay, builtin: BuiltIn
) -> None:
    await set_tier(patchbay, "pro")  # the voice fee, and no credits
    async with patchbay.client() as c:
        heard = await transcribe(c)
        said = await c.post("/v1/audio/speech", json={**SPEECH, "response_format": "mp3"})
    for response in (heard, said):
        assert response.status_code == 402, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_credits")
        assert "credits" in error["message"]
    assert isinstance(builtin.stt, FakeSTT) and builtin.stt.calls == []
    assert isinstance(builtin.tts, FakeTTS) and builtin.tts.state.calls == []
    assert await entries(patchbay) == []


async def test_audio_on_a_tier_without_a_voice_fee_costs_nothing_and_never_touches_the_ledger(
    patchbay: Patchbay,
) -> None:
    # The rig's org is `enterprise` (the default tier): the built-in engines cost nothing.
    async with patchbay.client() as c:
        heard = await transcribe(c)
        said = await c.post("/v1/audio/speech", json={**SPEECH, "response_format": "flac"})
    assert (heard.status_code, said.status_code) == (200, 200)
    assert heard.headers["x-patchbay-cost"] == said.headers["x-patchbay-cost"] == "0.00"
    assert await entries(patchbay) == []
