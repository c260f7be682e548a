"""The voice session's side of billing, with fake engines: a segment refused for credits is an
`insufficient_credits` error and a failed response (or transcript), the session goes on, and a
finished response's `response.done` carries what its turn's segments reported they cost.

The routed engines report each settled segment to the session's `TurnCosts` (tested end to end
in tests/server/realtime/test_billing.py); here a fake TTS reports a fixed charge the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from billing.money import format_usd
from billing.turn_costs import TurnCosts
from providers.errors import insufficient_credits
from tests.voice.fake_llm import FakeLLM
from tests.voice.fakes import FakeSTT, FakeTTS
from voice import events as ev
from voice.audio import PCM16_16K
from voice.clock import ManualClock
from voice.config import SessionConfig
from voice.session import VoiceSession
from voice.turn import SessionContext

SENTENCE_COST = 17


class BilledTTS(FakeTTS):
    """Refuses its first `refusals` sentences for credits, then speaks each and reports its charge."""

    def __init__(self, costs: TurnCosts, *, refusals: int = 0, **kw: Any) -> None:
        super().__init__(sample_rate=24_000, **kw)
        self.costs = costs
        self.refusals = refusals

    async def synthesize(
        self, text: str, *, voice: str | None = None, turn_id: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        if self.refusals:
            self.refusals -= 1
            raise insufficient_credits()
        async for chunk in super().synthesize(text, voice=voice, turn_id=turn_id):
            yield chunk
        self.costs.add(turn_id, "tts", SENTENCE_COST)


class RefusingSTT(FakeSTT):
    def __init__(self, *, refusals: int) -> None:
        super().__init__(text="a table for two")
        self.refusals = refusals

    async def transcribe(
        self, pcm16_16k: bytes, *, language: str | None = None, turn_id: str | None = None
    ) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise insufficient_credits()
        return await super().transcribe(pcm16_16k, language=language, turn_id=turn_id)


def session_with(tts: FakeTTS, costs: TurnCosts | None, stt: FakeSTT | None = None) -> VoiceSession:
    return VoiceSession(
        SessionContext(org_id="org_1", session_id="sess_1"),
        stt=stt or FakeSTT(),
        tts=tts,
        llm=FakeLLM(),
        config=SessionConfig(input_format=PCM16_16K, turn_detection=None),
        costs=costs,
        clock=ManualClock(),
    )


def drain(session: VoiceSession) -> list[ev.SessionEvent]:
    out: list[ev.SessionEvent] = []
    while (event := session.outbox.get_nowait()) is not None:
        out.append(event)
    return out


async def respond(session: VoiceSession) -> list[ev.SessionEvent]:
    session.add_text("user", "book it")
    session.create_response()
    await session.idle()
    return drain(session)


async def test_a_sentence_refused_for_credits_fails_the_response_and_the_next_turn_runs() -> None:
    costs = TurnCosts()
    tts = BilledTTS(costs, refusals=1)
    session = session_with(tts, costs)

    refused = await respond(session)
    errors = [e for e in refused if isinstance(e, ev.ErrorEvent)]
    assert [(e.type, e.code) for e in errors] == [("insufficient_quota", "insufficient_credits")]
    done = refused[-1]
    assert isinstance(done, ev.ResponseDone)
    assert (done.status, done.error_code, done.error_type) == (
        "failed",
        "insufficient_credits",
        "insufficient_quota",
    )
    assert not any(isinstance(e, ev.AudioDelta) for e in refused)
    assert done.metadata["cost"] == "0.00" and done.metadata["cost_by_segment"] == {}

    served = await respond(session)
    done = served[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    sentences = len(tts.state.calls)
    assert sentences >= 1 and any(isinstance(e, ev.AudioDelta) for e in served)
    assert done.metadata["cost"] == format_usd(SENTENCE_COST * sentences)
    assert done.metadata["cost_by_segment"] == {"tts": done.metadata["cost"]}


async def test_speech_refused_for_credits_is_a_failed_transcript_and_no_response() -> None:
    stt = RefusingSTT(refusals=1)
    session = session_with(FakeTTS(sample_rate=24_000), TurnCosts(), stt=stt)
    session.append_audio(bytes(16_000 * 2))
    session.commit()
    await session.idle()
    refused = drain(session)
    failed = [e for e in refused if isinstance(e, ev.InputTranscriptFailed)]
    assert [f.code for f in failed] == ["insufficient_credits"]
    errors = [e for e in refused if isinstance(e, ev.ErrorEvent)]
    assert [(e.type, e.code) for e in errors] == [("insufficient_quota", "insufficient_credits")]
    assert not any(isinstance(e, ev.ResponseCreated) for e in refused)

    session.append_audio(bytes(16_000 * 2))
    session.commit()
    await session.idle()
    heard = [e for e in drain(session) if isinstance(e, ev.InputTranscriptCompleted)]
    assert [h.transcript for h in heard] == ["a table for two"]


async def test_a_session_that_is_not_billed_says_nothing_about_cost() -> None:
    events = await respond(session_with(FakeTTS(sample_rate=24_000), None))
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    assert "cost" not in done.metadata
