"""Billing on `/v1/realtime`, end to end on both databases: what a voice turn is charged, by
segment and source, what `response.done` says it cost, and a session whose credits run out
mid-call (an `insufficient_credits` error, a failed response, nothing charged beyond the
balance) going on after a grant.

The LLM is the org's own OpenAI key (BYOK) on the emulator; STT and TTS are the built-in
engines (fakes standing in for Whisper and espeak-ng: billed to the platform at no list price,
so only the tier's voice fee) or, for the priced case, an ElevenLabs connection on the emulator
marked as the platform's (platform connections, issue 14 item 1, are built elsewhere; a row whose
credential source is `platform_key` is what makes a connection bill to the platform).
"""

from __future__ import annotations

import base64
import math
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select, update

from billing.ledger_query import list_entries
from billing.ledger_types import Entry, EntryKind
from billing.money import format_usd, parse_usd
from billing.prices import Price, cost
from billing.tables import UsageRecord
from foundation.orgs import Org
from providers.types import Usage
from providers.vault.secret import Secret
from routing.speech import BuiltIn
from routing.tables import Connection
from server.budgets import set_org_budget
from server.realtime.runtime import EnginesFactory
from tests.billing.test_policy import matrix_rows
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client, Patchbay
from tests.voice.fakes import FakeSTT, FakeTTS

REPLY = "Your table is booked."  # one sentence: one TTS segment
FEE_PRO = 5_000  # micro-USD per minute of platform voice on `pro` (billing/data/tiers.json)
MINI = Price(input=150_000, output=600_000, cached_input=75_000)  # openai/gpt-4o-mini, docs/billing.md


@pytest.fixture
def engines() -> EnginesFactory | None:
    return None  # the org's routed speech chains, built-in engines last, as in production


@pytest.fixture
def builtin(patchbay: Patchbay) -> BuiltIn:
    engines = BuiltIn(
        stt=FakeSTT("internal:whisper", text="a table for two"),
        tts=FakeTTS("internal:espeak", sample_rate=24_000, chunks=4, chunk_ms=40),
    )
    patchbay.runtime.internal = engines
    return engines


async def set_tier(patchbay: Patchbay, tier: str) -> None:
    async with patchbay.services.db.session() as s:
        await s.execute(update(Org).where(Org.id == patchbay.org_id).values(tier=tier))
    patchbay.services.config_changed(patchbay.org_id)


async def entries(patchbay: Patchbay) -> list[Entry]:
    await patchbay.services.leases.flush()  # settles are written behind (billing/lease.py)
    async with patchbay.services.db.session() as s:
        return await list_entries(s, patchbay.org_id)


async def usage(patchbay: Patchbay) -> list[UsageRecord]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = (await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id))).all()
    return sorted(rows, key=lambda r: r.created_at)


async def quiet_session(connect: Any) -> Client:
    client: Client = await connect()
    await client.until("session.created")
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    await client.until("session.updated")
    return client


async def text_turn(client: Client, text: str) -> list[dict[str, Any]]:
    """A user message answered aloud: the events up to its `response.done`."""
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    )
    await client.send("response.create")
    return await client.until("response.done", within=20)


async def audio_commit(client: Client, seconds: float = 1.0) -> list[dict[str, Any]]:
    """`seconds` of 24 kHz audio committed by hand: the events up to its transcript's outcome."""
    audio = bytes(int(24_000 * seconds) * 2)
    await client.send("input_audio_buffer.append", audio=base64.b64encode(audio).decode())
    await client.send("input_audio_buffer.commit")
    seen: list[dict[str, Any]] = []
    while not seen or not seen[-1]["type"].startswith("conversation.item.input_audio_transcription."):
        seen.append(await client.recv(within=20))
    return seen


def fee(seconds: float, per_minute: int) -> int:
    return math.ceil(Fraction(repr(seconds)) * per_minute / 60)


@pytest.fixture
def eleven() -> Any:
    emulator = el.ElevenLabsEmulator(tone_seconds=0.3)
    with ServedApp(emulator.app) as served:
        yield emulator, served.url


async def platform_tts(patchbay: Patchbay, url: str) -> None:
    """An ElevenLabs connection billed to the platform, first in the org's TTS chain."""
    async with patchbay.services.db.session() as s:
        await patchbay.services.connections().create(
            s,
            patchbay.org_id,
            provider="elevenlabs",
            name="plat",
            base_url=url,
            key=Secret("xi-CANARY-0123456789abcdef"),
        )
        await s.execute(
            update(Connection)
            .where(Connection.org_id == patchbay.org_id, Connection.provider == "elevenlabs")
            .values(credential_source="platform_key")
        )
        await patchbay.services.agents().set_org_routing(
            s,
            patchbay.org_id,
            chains={"chat": ["openai/gpt-4o-mini"], "tts": ["elevenlabs/eleven_flash_v2_5"]},
        )
    patchbay.services.config_changed(patchbay.org_id)


@pytest.mark.parametrize(
    ("tier", "markup_bp", "per_minute"), [("pro", 11_500, FEE_PRO), ("agency", 11_000, 0)]
)
async def test_a_voice_turn_with_a_byok_llm_pays_only_for_the_platform_speech(
    patchbay: Patchbay,
    connect: Any,
    llm: OpenAIEmulator,
    builtin: BuiltIn,
    eleven: Any,
    tier: str,
    markup_bp: int,
    per_minute: int,
) -> None:
    await set_tier(patchbay, tier)
    await platform_tts(patchbay, eleven[1])
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    llm.enqueue(Scenario(text=REPLY))

    client = await quiet_session(connect)
    heard = await audio_commit(client, 1.0)
    assert heard[-1]["type"] == "conversation.item.input_audio_transcription.completed"
    await client.send("response.create")
    done = (await client.until("response.done", within=20))[-1]["response"]
    assert done["status"] == "completed"
    assert done["metadata"]["tts_provider"] == "elevenlabs:plat"

    stt, llm_row, tts = (await usage(patchbay))[:3]
    assert [(r.segment, r.billing_source) for r in (stt, llm_row, tts)] == [
        ("stt", "platform"),
        ("llm", "byok"),
        ("tts", "platform"),
    ]
    assert stt.audio_seconds == pytest.approx(1.0, abs=0.01) and tts.characters == len(REPLY)
    # STT: the built-in engine has no list price, only the voice fee. LLM: the org's own key,
    # nothing. TTS: 60 USD per 1M characters with the tier's markup, and the voice fee.
    # Both speech segments on the platform's ElevenLabs connection (its default STT model, as
    # the org names no STT chain), each at list price with the tier's markup, plus the voice fee:
    # scribe_v1 at 0.0067 USD a minute, eleven_flash_v2_5 at 60 USD per 1M characters.
    # The LLM on the org's own key costs nothing.
    assert (stt.profile_id, stt.model, tts.model) == ("elevenlabs:plat", "scribe_v1", "eleven_flash_v2_5")
    stt_list = math.ceil(Fraction(repr(stt.audio_seconds)) * 6_700 / 60)
    stt_cost = -(-stt_list * markup_bp // 10_000) + fee(stt.audio_seconds, per_minute)
    tts_cost = -(-len(REPLY) * 60 * markup_bp // 10_000) + fee(tts.audio_seconds, per_minute)
    assert (stt.cost_micro_usd, llm_row.cost_micro_usd, tts.cost_micro_usd) == (stt_cost, 0, tts_cost)

    # The ledger: a settle for each platform speech segment, nothing for the LLM; served from
    # the server's credit lease (a hold it releases, unused part and all, at the flush).
    await patchbay.services.leases.flush()  # settles are written behind (billing/lease.py)
    written = await entries(patchbay)
    assert [e.kind for e in written if e.kind is not EntryKind.HOLD and e.kind is not EntryKind.RELEASE] == [
        EntryKind.GRANT,
        EntryKind.SETTLE,
        EntryKind.SETTLE,
    ]
    leases = [e for e in written if e.kind is EntryKind.HOLD]
    assert leases and all(e.details.get("lease") is True for e in leases)
    assert sorted(e.hold_id or "" for e in written if e.kind is EntryKind.RELEASE) == sorted(
        e.id for e in leases
    )
    settles = [e for e in written if e.kind is EntryKind.SETTLE]
    assert [e.amount for e in settles] == [stt_cost, tts_cost]
    assert [e.details["source"] for e in settles] == ["platform", "platform"]
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (1_000_000 - stt_cost - tts_cost, 0)

    # What response.done says the turn cost is what the ledger charged, by segment.
    assert done["metadata"]["cost"] == format_usd(stt_cost + tts_cost)
    assert done["metadata"]["cost_by_segment"] == {
        "llm": "0.00",
        "stt": format_usd(stt_cost),
        "tts": format_usd(tts_cost),
    }
    # And who paid for each: the org's own LLM key, the platform's speech.
    assert done["metadata"]["billing_source_by_segment"] == {
        "llm": "byok",
        "stt": "platform",
        "tts": "platform",
    }


async def test_credits_running_out_mid_call_fail_the_response_and_a_grant_lets_the_next_turn_run(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, builtin: BuiltIn
) -> None:
    await set_tier(patchbay, "pro")
    ledger = patchbay.services.ledger
    # A sentence's TTS hold is the voice fee for its text at 10 characters a second: 21
    # characters, 2.1 s, 175 micro-USD on pro. The fake speaks 0.16 s, 14 micro-USD.
    hold = fee(len(REPLY) / 10, FEE_PRO)
    spoken = fee(0.16, FEE_PRO)
    assert (hold, spoken) == (175, 14)
    await ledger.grant(patchbay.org_id, hold, "grant-1")
    llm.enqueue(*(Scenario(text=REPLY) for _ in range(3)))
    client = await quiet_session(connect)

    first = await text_turn(client, "a table for two, please")
    assert first[-1]["response"]["status"] == "completed"
    assert first[-1]["response"]["metadata"]["cost"] == format_usd(spoken)
    assert (await ledger.balance(patchbay.org_id)).available == hold - spoken

    # What is left cannot cover the next sentence: refused before TTS runs, the response fails.
    second = await text_turn(client, "and one more")
    errors = [e["error"] for e in second if e["type"] == "error"]
    assert [(e["type"], e["code"]) for e in errors] == [("insufficient_quota", "insufficient_credits")]
    assert "credits" in errors[0]["message"]
    failed = second[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["status_details"]["error"] == {"type": "insufficient_quota", "code": "insufficient_credits"}
    assert not any(e["type"] == "response.output_audio.delta" for e in second)
    assert failed["metadata"]["cost"] == "0.00"  # the BYOK LLM segment ran, and cost nothing
    # Nothing was charged beyond the balance, nothing is left held, and the refusal wrote nothing.
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (hold - spoken, 0)
    assert [e.kind for e in await entries(patchbay)] == [
        EntryKind.GRANT,
        EntryKind.HOLD,
        EntryKind.SETTLE,
    ]

    # A grant, and the same session's next turn is served and charged.
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-2")
    third = await text_turn(client, "thanks")
    assert third[-1]["response"]["status"] == "completed"
    assert any(e["type"] == "response.output_audio.delta" for e in third)
    assert third[-1]["response"]["metadata"]["cost"] == format_usd(spoken)
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (1_000_000 + hold - 2 * spoken, 0)


async def test_speech_the_credits_cannot_cover_is_not_transcribed_until_a_grant(
    patchbay: Patchbay, connect: Any, builtin: BuiltIn
) -> None:
    await set_tier(patchbay, "pro")  # the built-in STT costs the voice fee, and there are no credits
    client = await quiet_session(connect)
    refused = await audio_commit(client, 1.0)
    failed = refused[-1]
    assert failed["type"] == "conversation.item.input_audio_transcription.failed"
    assert failed["error"]["code"] == "insufficient_credits"
    error = (await client.until("error"))[-1]["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_credits")
    assert isinstance(builtin.stt, FakeSTT) and builtin.stt.calls == []
    assert await entries(patchbay) == []

    await patchbay.services.ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    heard = await audio_commit(client, 1.0)
    assert heard[-1]["type"] == "conversation.item.input_audio_transcription.completed"
    assert heard[-1]["transcript"] == "a table for two"


async def test_a_surcharged_llm_turn_the_credits_cannot_cover_never_reaches_the_provider(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, builtin: BuiltIn
) -> None:
    await set_tier(patchbay, "starter")  # BYOK with a per-request surcharge, and no credits
    llm.enqueue(Scenario(text=REPLY))
    client = await quiet_session(connect)
    events = await text_turn(client, "hello")
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["insufficient_credits"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["status_details"]["error"]["code"] == "insufficient_credits"
    assert llm.chat_requests == []
    assert await entries(patchbay) == []


async def test_a_reached_monthly_budget_fails_the_response_with_its_own_code(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, builtin: BuiltIn
) -> None:
    """Credits would cover the turn, the org's monthly budget does not: the refusal names the cap."""
    await set_tier(patchbay, "starter")  # BYOK with a per-request surcharge: the LLM segment is charged
    await patchbay.services.ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    async with patchbay.services.db.session() as s:
        await set_org_budget(s, patchbay.org_id, 0, now=patchbay.services.spend_caps.now())
    patchbay.services.spend_caps.drop_org(patchbay.org_id)
    llm.enqueue(Scenario(text=REPLY))
    client = await quiet_session(connect)
    events = await text_turn(client, "hello")
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["budget_exceeded"]
    assert "--monthly-budget" in errors[0]["message"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["status_details"]["error"]["code"] == "budget_exceeded"
    assert llm.chat_requests == []
    assert [e.kind for e in await entries(patchbay)] == [EntryKind.GRANT]


async def test_a_cancelled_response_is_charged_what_it_used_and_its_done_says_so(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, builtin: BuiltIn
) -> None:
    """`response.cancel` mid-turn: the LLM stream stalled after its first sentence (tokens that
    arrived, estimated: the starter tier's BYOK surcharge) and the audio already made (the voice
    fee) are charged, and the cancelled `response.done` reports exactly those charges."""
    await set_tier(patchbay, "starter")
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    # The first sentence and a few words of the second, then the upstream holds the stream open.
    llm.enqueue(Scenario(text=REPLY + " We will also send you a reminder tomorrow.", stall_after=8))
    client = await quiet_session(connect)
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a table"}]},
    )
    await client.send("response.create")
    await client.until("response.output_audio.delta", within=20)
    await client.send("response.cancel")
    done = (await client.until("response.done", within=20))[-1]["response"]
    assert done["status"] == "cancelled"

    rows = await usage(patchbay)
    by_segment = {r.segment: r for r in rows}
    assert sorted(by_segment) == ["llm", "tts"] and len(rows) == 2
    assert by_segment["llm"].status == "cancelled" and by_segment["llm"].output_tokens > 0
    assert by_segment["tts"].audio_seconds > 0
    llm_cost, tts_cost = by_segment["llm"].cost_micro_usd, by_segment["tts"].cost_micro_usd
    assert llm_cost > 0 and tts_cost == fee(by_segment["tts"].audio_seconds, 10_000)  # starter: 0.01 USD/min

    settles = [e for e in await entries(patchbay) if e.kind is EntryKind.SETTLE]
    assert sorted(e.amount for e in settles) == sorted([llm_cost, tts_cost])
    assert done["metadata"]["cost"] == format_usd(llm_cost + tts_cost)
    assert done["metadata"]["cost_by_segment"] == {"llm": format_usd(llm_cost), "tts": format_usd(tts_cost)}
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (1_000_000 - llm_cost - tts_cost, 0)


def doc_rates(tier: str) -> tuple[Fraction, Fraction, Fraction]:
    """From docs/billing.md's table of what a 1.00 USD segment (one minute of audio) is charged:
    the tier's factor on a BYOK LLM's notional price, on a platform segment's list price, and its
    voice fee per minute (a platform TTS minus a platform LLM), as fractions of USD."""
    rows = {(r[0], r[1]): r[3:] for r in matrix_rows()}
    byok_llm = Fraction(parse_usd(rows[(tier, "byok")][0]), 1_000_000)
    platform_llm, _, platform_tts = (Fraction(parse_usd(v), 1_000_000) for v in rows[(tier, "platform")])
    return byok_llm, platform_llm, platform_tts - platform_llm


@pytest.mark.parametrize("tier", ["starter", "pro", "agency", "enterprise"])
async def test_a_byok_llm_with_the_platforms_tts_charges_what_the_doc_says(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, builtin: BuiltIn, eleven: Any, tier: str
) -> None:
    """The voice case of docs/billing.md, end to end: a spoken answer from the org's own LLM key and
    the platform's TTS pays the TTS at the tier's markup and its voice fee, and for the LLM only
    what the tier charges BYOK (starter's surcharge; nothing elsewhere). Expectations come from
    the doc's table, not from the policy code."""
    byok_factor, markup_factor, fee_per_minute = doc_rates(tier)
    await set_tier(patchbay, tier)
    await platform_tts(patchbay, eleven[1])
    await patchbay.services.ledger.grant(patchbay.org_id, 1_000_000, "grant-1")
    llm.enqueue(Scenario(text=REPLY))
    client = await quiet_session(connect)
    done = (await text_turn(client, "a table for two"))[-1]["response"]
    assert done["status"] == "completed"

    llm_row, tts = await usage(patchbay)
    assert [(r.segment, r.billing_source) for r in (llm_row, tts)] == [("llm", "byok"), ("tts", "platform")]
    notional = cost(
        MINI, tokens=Usage(input_tokens=llm_row.input_tokens, output_tokens=llm_row.output_tokens)
    )
    tts_list = len(REPLY) * 60  # eleven_flash_v2_5: 60 USD per 1M characters
    expected_llm = math.ceil(notional * byok_factor)
    expected_tts = math.ceil(tts_list * markup_factor) + math.ceil(
        Fraction(repr(tts.audio_seconds)) * fee_per_minute * 1_000_000 / 60
    )
    assert (llm_row.cost_micro_usd, tts.cost_micro_usd) == (expected_llm, expected_tts)
    assert (expected_llm == 0) == (tier != "starter")
    assert done["metadata"]["cost_by_segment"] == {
        "llm": format_usd(expected_llm),
        "tts": format_usd(expected_tts),
    }
    await patchbay.services.leases.flush()
    balance = await patchbay.services.ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (1_000_000 - expected_llm - expected_tts, 0)
