"""Who a voice session bills, and the per-turn accounting of its STT, LLM and TTS segments.

Every segment is recorded with the billing source of the engine or connection that served
it (after fallback) and the turn id it belongs to, in the same usage records as chat.
Recording is O(1) and never waits on the database (`billing.usage.UsageRecorder`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from billing.usage import Segment, SegmentStatus, UsageSegment
from providers.contract import BillingSource
from providers.types import Usage
from voice.llm import ServedBy


class UsageSink(Protocol):
    def record(self, segment: UsageSegment) -> None: ...


class NullUsage:
    def record(self, segment: UsageSegment) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SessionContext:
    org_id: str
    session_id: str
    agent_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None
    """The route the client asked for (`?model=`); None lets the org's matrix decide."""


def _provider_of(engine_name: str) -> str:
    """Engine names are `provider:name` (`internal:espeak`, `elevenlabs:org`)."""
    return engine_name.partition(":")[0] or engine_name


@dataclass(slots=True)
class TtsTally:
    """Characters spoken per serving engine within one response."""

    by_engine: dict[tuple[str, BillingSource], int] = field(default_factory=dict)
    audio_seconds: dict[tuple[str, BillingSource], float] = field(default_factory=dict)

    def add(self, engine: str, billing: BillingSource, characters: int, seconds: float) -> None:
        key = (engine, billing)
        self.by_engine[key] = self.by_engine.get(key, 0) + characters
        self.audio_seconds[key] = self.audio_seconds.get(key, 0.0) + seconds


class TurnAccounts:
    """Builds and records one session's usage segments."""

    def __init__(self, context: SessionContext, sink: UsageSink, *, intent: str = "voice_turn") -> None:
        self.context = context
        self.sink = sink
        self.intent = intent

    def _segment(
        self, segment: Segment, turn_id: str | None, provider: str, billing: BillingSource, **kw: object
    ) -> None:
        ctx = self.context
        self.sink.record(
            UsageSegment(
                org_id=ctx.org_id,
                segment=segment,
                provider=provider,
                billing_source=billing,
                agent_id=ctx.agent_id,
                api_key_id=ctx.api_key_id,
                request_id=ctx.session_id,
                turn_id=turn_id,
                intent=self.intent,
                **kw,  # type: ignore[arg-type]
            )
        )

    def stt(
        self,
        turn_id: str | None,
        engine: str,
        billing: BillingSource,
        audio_seconds: float,
        *,
        model: str | None,
        latency_ms: float | None,
        status: SegmentStatus = SegmentStatus.OK,
    ) -> None:
        self._segment(
            Segment.STT,
            turn_id,
            _provider_of(engine),
            billing,
            profile_id=engine,
            model=model,
            audio_seconds=audio_seconds,
            latency_ms=latency_ms,
            status=status,
        )

    def llm(
        self, turn_id: str, served: ServedBy, usage: Usage, *, latency_ms: float | None, status: SegmentStatus
    ) -> None:
        self._segment(
            Segment.LLM,
            turn_id,
            served.provider,
            served.billing_source,
            model=served.model,
            profile_id=served.profile_id,
            connection_id=served.connection_id,
            tokens=usage,
            latency_ms=latency_ms,
            status=status,
        )

    def tts(
        self, turn_id: str | None, tally: TtsTally, *, latency_ms: float | None, status: SegmentStatus
    ) -> None:
        for (engine, billing), characters in tally.by_engine.items():
            self._segment(
                Segment.TTS,
                turn_id,
                _provider_of(engine),
                billing,
                profile_id=engine,
                characters=characters,
                audio_seconds=round(tally.audio_seconds[(engine, billing)], 3),
                latency_ms=latency_ms,
                status=status,
            )
