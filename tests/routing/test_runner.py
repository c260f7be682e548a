"""The attempt runner on its own, with a modality of plain strings: what every modality shares.

Chat's detailed fallback, retry and cooldown cases are in test_executor.py (through the
chat modality); speech's in test_speech.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from providers.contract import Capability, ErrorClass, ModelRef, ProviderId
from providers.errors import ProviderError
from routing.catalog import ModelInfo
from routing.cooldown_store import InProcessCooldownStore
from routing.errors import AllAttemptsFailedError
from routing.model import ConnectionView
from routing.resolver import Plan, PlannedAttempt
from routing.runner import NO_RETRY, AttemptRunner, Attempts, Open, RetryPolicy, Run
from routing.trace import AttemptTrace, TraceEntry
from tests.routing.fakes import FakeWallClock, conn

Script = Callable[[], AsyncIterator[str]]


def attempt(c: ConnectionView, model: str = "m", step: int = 0) -> PlannedAttempt:
    info = ModelInfo(provider=c.provider, id=model, capabilities=frozenset({Capability.TTS}))
    return PlannedAttempt(ref=ModelRef(c.provider.value, model), connection=c, info=info, step=step)


def plan(*items: PlannedAttempt) -> Plan:
    return Plan(intent=None, source="test", strict=False, items=items)  # type: ignore[arg-type]


def said(*chunks: str) -> Script:
    async def stream() -> AsyncIterator[str]:
        for chunk in chunks:
            yield chunk

    return stream


def failing(error_class: ErrorClass, status: int, *, after: tuple[str, ...] = ()) -> Script:
    async def stream() -> AsyncIterator[str]:
        for chunk in after:
            yield chunk
        raise ProviderError(error_class, "refused", provider="fake", status=status)

    return stream


def silent() -> AsyncIterator[str]:
    async def stream() -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield "never"

    return stream()


class Rig:
    def __init__(self, scripts: dict[str, Script], **attempts_kw: object) -> None:
        self.store = InProcessCooldownStore()
        self.clock = FakeWallClock()
        self.runner = AttemptRunner(store=self.store, clock=self.clock)
        self.scripts = scripts
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.attempts_kw = attempts_kw

    async def prepare(self, a: PlannedAttempt) -> Open[str] | TraceEntry:
        script = self.scripts[a.connection.profile_id]

        def open_() -> AsyncIterator[str]:
            self.opened.append(a.connection.profile_id)
            return self._tracked(a.connection.profile_id, script())

        return open_

    async def _tracked(self, profile: str, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self.closed.append(profile)

    async def run(self, p: Plan) -> tuple[list[str], Run]:
        run = Run(AttemptTrace())
        attempts = Attempts(self.prepare, lambda chunk: bool(chunk), **self.attempts_kw)  # type: ignore[arg-type]
        out = [chunk async for chunk in self.runner.run(p, run, attempts)]
        return out, run


A, B = conn("elevenlabs", "a"), conn("openai", "b")
BUILTIN = ConnectionView(
    connection_id="",
    org_id="org_1",
    provider=ProviderId.INTERNAL,
    name="espeak",
    base_url=None,
    status=A.status,
    position=0,
    credential_source=A.credential_source,
    billing_source=A.billing_source,
)


async def test_an_attempt_silent_past_the_first_output_timeout_fails_as_timeout_and_the_next_serves() -> None:
    rig = Rig({"elevenlabs:a": silent, "openai:b": said("x", "y")}, first_output_timeout=0.01, retry=NO_RETRY)
    out, run = await rig.run(plan(attempt(A), attempt(B, step=1)))
    assert out == ["x", "y"]
    assert run.trace.header() == "elevenlabs:a/m=failed:timeout;openai:b/m=served"
    assert run.served is not None and run.served.connection is B
    assert rig.closed == ["elevenlabs:a", "openai:b"]  # the silent stream was closed, not left behind


async def test_events_before_the_first_output_are_held_back_and_dropped_on_fallback() -> None:
    rig = Rig({"elevenlabs:a": failing(ErrorClass.SERVER_ERROR, 500, after=("",)), "openai:b": said("ok")})
    out, run = await rig.run(plan(attempt(A), attempt(B, step=1)))
    assert out == ["ok"]  # the empty (non-output) event of the failed attempt never reached the caller


async def test_a_failure_after_output_is_raised_and_never_falls_back() -> None:
    rig = Rig(
        {"elevenlabs:a": failing(ErrorClass.SERVER_ERROR, 500, after=("half",)), "openai:b": said("ok")}
    )
    run = Run(AttemptTrace())
    got: list[str] = []
    attempts: Attempts[str] = Attempts(rig.prepare, bool)
    with pytest.raises(ProviderError):
        async for chunk in rig.runner.run(plan(attempt(A), attempt(B, step=1)), run, attempts):
            got.append(chunk)
    assert got == ["half"]
    assert rig.opened == ["elevenlabs:a"]
    assert run.trace.entries[-1].after_output


async def test_no_retry_policy_moves_on_at_once_where_the_default_retries() -> None:
    flaky = {"elevenlabs:a": failing(ErrorClass.SERVER_ERROR, 500), "openai:b": said("ok")}
    default = Rig(dict(flaky))
    await default.run(plan(attempt(A), attempt(B, step=1)))
    assert default.opened == ["elevenlabs:a", "elevenlabs:a", "openai:b"]

    speech = Rig(dict(flaky), retry=NO_RETRY)
    await speech.run(plan(attempt(A), attempt(B, step=1)))
    assert speech.opened == ["elevenlabs:a", "openai:b"]
    assert speech.clock.slept == []


async def test_a_refused_key_disables_a_cloud_profile_but_the_builtin_engine_never_cools_down() -> None:
    rig = Rig(
        {"elevenlabs:a": failing(ErrorClass.AUTH, 401), "internal:espeak": failing(ErrorClass.AUTH, 401)}
    )
    with pytest.raises(AllAttemptsFailedError) as caught:
        await rig.run(plan(attempt(A), attempt(BUILTIN, "espeak", step=1)))
    assert caught.value.trace.header() == "elevenlabs:a/m=failed:auth;internal:espeak/espeak=failed:auth"
    states = await rig.store.get_many("org_1", ["elevenlabs:a", "internal:espeak"])
    assert states["elevenlabs:a"].disabled_until is not None
    assert "internal:espeak" not in states


async def test_invalid_request_stops_the_plan() -> None:
    rig = Rig({"elevenlabs:a": failing(ErrorClass.INVALID_REQUEST, 400), "openai:b": said("ok")})
    with pytest.raises(AllAttemptsFailedError) as caught:
        await rig.run(plan(attempt(A), attempt(B, step=1)))
    assert caught.value.stopped
    assert rig.opened == ["elevenlabs:a"]


def test_a_connection_closed_before_the_reply_is_retried_at_once_then_with_backoff() -> None:
    closed = ProviderError(ErrorClass.NETWORK, "closed", provider="openai", closed_before_reply=True)
    plain = ProviderError(ErrorClass.NETWORK, "refused", provider="openai")
    twice = RetryPolicy(max_retries=2)
    assert twice.wait_before_retry(closed, 0) == 0.0
    assert twice.wait_before_retry(closed, 1) == 0.5  # the second failure: the upstream is in trouble
    assert twice.wait_before_retry(plain, 0) == 0.25
    # Speech retries nothing, but a kept connection closed under it is replaced once: else a
    # listener would hear the next engine's voice because a pooled connection went stale.
    assert NO_RETRY.wait_before_retry(closed, 0) == 0.0
    assert NO_RETRY.wait_before_retry(closed, 1) is None
    assert NO_RETRY.wait_before_retry(plain, 0) is None


async def test_a_call_that_found_this_workers_connections_all_busy_moves_on_without_retry_or_cooldown() -> (
    None
):
    def busy() -> AsyncIterator[str]:
        async def stream() -> AsyncIterator[str]:
            raise ProviderError(ErrorClass.OVERLOADED, "all busy", provider="elevenlabs", pool_exhausted=True)
            yield "never"

        return stream()

    rig = Rig({"elevenlabs:a": busy, "openai:b": said("ok")})
    out, run = await rig.run(plan(attempt(A), attempt(B, step=1)))
    assert out == ["ok"]
    assert rig.opened == ["elevenlabs:a", "openai:b"]  # no retry of the busy origin
    assert rig.clock.slept == []
    assert run.trace.header() == "elevenlabs:a/m=failed:overloaded;openai:b/m=served"
    assert await rig.store.get_many("org_1", ["elevenlabs:a"]) == {}  # the upstream was not at fault

    # The same class from the upstream itself is retried and cools the profile down.
    upstream = Rig({"elevenlabs:a": failing(ErrorClass.OVERLOADED, 529), "openai:b": said("ok")})
    await upstream.run(plan(attempt(A), attempt(B, step=1)))
    assert upstream.opened == ["elevenlabs:a", "elevenlabs:a", "openai:b"]
    assert "elevenlabs:a" in await upstream.store.get_many("org_1", ["elevenlabs:a"])
