from __future__ import annotations

import logging

import pytest

from providers.contract import Capability, ErrorClass, WireProtocol
from providers.errors import ProviderError
from providers.types import Finish, StreamEvent, TextDelta, UsageUpdate
from routing.catalog import default_catalog
from routing.cooldown_store import InProcessCooldownStore
from routing.errors import AllAttemptsFailedError, BaseUrlRefusedError
from routing.executor import Executor, RetryPolicy
from routing.intents import Intent
from routing.model import ConnectionView, DeclaredModel, OrgRouting
from routing.resolver import Resolver, RouteRequest
from tests.routing.fakes import (
    FakeChatAdapter,
    FakeCredential,
    FakeWallClock,
    OrgBuilder,
    Reply,
    chat,
    conn,
    fail,
)

SECRET = "sk-test-CANARY-0123456789"


class Rig:
    def __init__(self, org: OrgRouting, **executor_kw: object) -> None:
        self.org = org
        self.adapter = FakeChatAdapter()
        self.clock = FakeWallClock()
        self.store = InProcessCooldownStore()
        self.executor = Executor(
            resolver=Resolver(default_catalog()),
            store=self.store,
            credentials=lambda c: FakeCredential(f"{SECRET}-{c.name}"),
            adapters={WireProtocol.OPENAI_CHAT: self.adapter, WireProtocol.ANTHROPIC_MESSAGES: self.adapter},
            clock=self.clock,
            **executor_kw,  # type: ignore[arg-type]
        )

    async def run(self, route: RouteRequest | None = None) -> tuple[list[StreamEvent], str]:
        stream = self.executor.stream(self.org, route or RouteRequest(), chat("secret prompt text"))
        events = [e async for e in stream]
        return events, stream.trace.header()


def two_step_org(*extra: ConnectionView) -> OrgRouting:
    return OrgBuilder(
        connections=[conn("openai", "main"), conn("anthropic", "default"), *extra],
        matrix={Intent.CHAT: ("openai/gpt-4o", "anthropic/claude-haiku-4-5")},
    ).build()


def text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_rate_limited_primary_falls_back_then_is_skipped_then_returns() -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", fail(ErrorClass.RATE_LIMIT, 429, retry_after=30))
    events, header = await rig.run()
    assert text(events) == "hello"
    assert header == "openai:main/gpt-4o=failed:rate_limit;anthropic:default/claude-haiku-4-5=served"
    assert rig.clock.slept == []  # retry-after above the cap: no same-model wait

    rig.adapter.calls.clear()
    _, header = await rig.run()
    assert header.startswith("openai:main/gpt-4o=skipped:cooldown:rate_limit;")
    assert rig.adapter.served_by() == ["anthropic:default/claude-haiku-4-5"]

    rig.clock.advance(30)
    rig.adapter.calls.clear()
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=served"
    assert rig.adapter.served_by() == ["openai:main/gpt-4o"]


async def test_two_profiles_rotate() -> None:
    rig = Rig(two_step_org(conn("openai", "second")))
    for _ in range(4):
        await rig.run()
        rig.clock.advance(1)
    assert rig.adapter.served_by() == [
        "openai:main/gpt-4o",
        "openai:second/gpt-4o",
        "openai:main/gpt-4o",
        "openai:second/gpt-4o",
    ]


async def test_invalid_key_disables_its_profile_and_the_next_takes_over() -> None:
    rig = Rig(
        OrgBuilder(
            connections=[conn("openai", "main", position=1), conn("openai", "second", position=2)],
            matrix={Intent.CHAT: ("openai/gpt-4o",)},
        ).build()
    )
    rig.adapter.script("openai:main/gpt-4o", fail(ErrorClass.AUTH, 401))
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=failed:auth;openai:second/gpt-4o=served"
    rig.clock.advance(599)
    rig.adapter.calls.clear()
    _, header = await rig.run()
    # The disabled profile moved behind the healthy one, so the plan never reached it.
    assert header == "openai:second/gpt-4o=served"
    assert rig.adapter.served_by() == ["openai:second/gpt-4o"]
    state = (await rig.store.get_many("org_1", ["openai:main"]))["openai:main"]
    assert state.disabled_reason == "auth"
    rig.clock.advance(1)
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=served"


async def test_billing_error_disables_for_ten_minutes() -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", fail(ErrorClass.QUOTA_EXHAUSTED, 429))
    await rig.run()
    rig.clock.advance(599)
    _, header = await rig.run()
    assert header.startswith("openai:main/gpt-4o=skipped:disabled:billing;")
    rig.clock.advance(1)
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=served"


async def test_every_candidate_failing_gives_one_error_with_the_full_trace() -> None:
    rig = Rig(
        OrgBuilder(
            connections=[conn("openai", "main"), conn("anthropic", "default")],
            matrix={Intent.CHAT: ("openai/gpt-4o", "xai/grok-4", "anthropic/claude-haiku-4-5")},
        ).build()
    )
    rig.adapter.script("gpt-4o", fail(ErrorClass.SERVER_ERROR, 500), fail(ErrorClass.SERVER_ERROR, 500))
    rig.adapter.script("claude-haiku-4-5", fail(ErrorClass.OVERLOADED, 529, retry_after=60))
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.run()
    err = info.value
    assert err.trace.header() == (
        "openai:main/gpt-4o=failed:server_error;xai/grok-4=skipped:no_connection;"
        "anthropic:default/claude-haiku-4-5=failed:overloaded"
    )
    assert err.trace.entries[0].retries == 1 and err.trace.entries[0].status == 500
    assert err.last_error is not None and err.last_error.error_class is ErrorClass.OVERLOADED
    assert not err.stopped
    assert SECRET not in str(err) and "secret prompt" not in str(err)


async def test_context_length_never_falls_back() -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", fail(ErrorClass.CONTEXT_LENGTH, 400))
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.run()
    assert info.value.stopped
    assert rig.adapter.served_by() == ["openai:main/gpt-4o"]
    assert info.value.trace.header() == "openai:main/gpt-4o=failed:context_length"
    # The profile itself is fine: the next request uses it.
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=served"


async def test_no_fallback_after_output() -> None:
    rig = Rig(two_step_org())
    rig.adapter.script(
        "gpt-4o",
        Reply(text=("par", "tial"), error=ProviderError(ErrorClass.NETWORK, "reset", provider="openai")),
    )
    stream = rig.executor.stream(rig.org, RouteRequest(), chat())
    received: list[StreamEvent] = []
    with pytest.raises(ProviderError):
        async for event in stream:
            received.append(event)
    assert text(received) == "partial"
    assert rig.adapter.served_by() == ["openai:main/gpt-4o"]
    entry = stream.trace.entries[-1]
    assert entry.after_output and entry.label == "failed:network"
    assert stream.trace.served is None


async def test_events_before_output_are_delivered_in_order() -> None:
    rig = Rig(two_step_org())
    events, _ = await rig.run()
    assert [type(e) for e in events] == [UsageUpdate, TextDelta, Finish]


async def test_short_retry_after_retries_the_same_candidate() -> None:
    rig = Rig(two_step_org(), retry=RetryPolicy(max_retries=1, max_wait=2.0))
    rig.adapter.script("gpt-4o", fail(ErrorClass.RATE_LIMIT, 429, retry_after=1.5))
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=served"
    assert rig.clock.slept == [1.5]
    assert rig.adapter.served_by() == ["openai:main/gpt-4o", "openai:main/gpt-4o"]


async def test_pinned_model_failure_is_reported_not_masked() -> None:
    org = OrgBuilder(
        connections=[conn("openai", "main"), conn("openai", "second"), conn("anthropic")],
        matrix={Intent.CHAT: ("anthropic/claude-haiku-4-5",)},
    ).build()
    rig = Rig(org)
    rig.adapter.script("gpt-4o", fail(ErrorClass.NOT_FOUND, 404), fail(ErrorClass.NOT_FOUND, 404))
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.run(RouteRequest(model="openai/gpt-4o"))
    assert info.value.stopped
    assert rig.adapter.served_by() == ["openai:main/gpt-4o", "openai:second/gpt-4o"]


async def test_complete_falls_back_too() -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", fail(ErrorClass.PERMISSION, 403))
    result = await rig.executor.complete(rig.org, RouteRequest(), chat())
    assert result.response.text == "hello"
    assert result.attempt.connection.profile_id == "anthropic:default"
    assert (
        result.trace.header()
        == "openai:main/gpt-4o=failed:permission;anthropic:default/claude-haiku-4-5=served"
    )
    assert result.trace.to_dict()["billing_source"] == "byok"


async def test_guard_refusal_moves_on() -> None:
    lab = conn(
        "openai_compatible",
        "mylab",
        base_url="http://169.254.169.254/v1",
        models=[DeclaredModel("llama", frozenset({Capability.TEXT}))],
    )
    org = OrgBuilder(
        connections=[lab, conn("openai", "main")], matrix={Intent.CHAT: ("mylab/llama", "openai/gpt-4o")}
    ).build()

    async def guard(connection: ConnectionView) -> None:
        raise BaseUrlRefusedError("private_address", "refused")

    rig = Rig(org, guard=guard)
    _, header = await rig.run()
    assert header == "openai_compatible:mylab/llama=failed:guard:private_address;openai:main/gpt-4o=served"


async def test_trace_is_logged_without_prompt_or_key(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", fail(ErrorClass.AUTH, 401))
    with caplog.at_level(logging.INFO, logger="patchbay.routing"):
        await rig.run()
    records = [r for r in caplog.records if r.name == "patchbay.routing"]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["routing"]["served"] == "anthropic:default/claude-haiku-4-5"
    assert [a["result"] for a in fields["routing"]["attempts"]] == ["failed:auth", "served"]
    dumped = repr(records[0].__dict__)
    assert SECRET not in dumped and "secret prompt" not in dumped


async def test_trace_is_logged_once_when_the_caller_stops_early(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(two_step_org())
    rig.adapter.script("gpt-4o", Reply(text=("a", "b", "c")))
    stream = rig.executor.stream(rig.org, RouteRequest(), chat())
    with caplog.at_level(logging.DEBUG, logger="patchbay.routing"):
        events = stream.__aiter__()
        assert isinstance(await events.__anext__(), UsageUpdate)
        assert isinstance(await events.__anext__(), TextDelta)
        assert rig.adapter.closed == 0
        await events.aclose()  # type: ignore[attr-defined]
        assert rig.adapter.closed == 1  # the upstream stream is closed at once, not at GC
    assert [r.getMessage() for r in caplog.records if r.name == "patchbay.routing"] == [
        "routed request served"
    ]
    assert stream.served is not None and stream.served.connection.profile_id == "openai:main"


async def test_a_clean_first_attempt_logs_at_debug_and_a_fallback_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(two_step_org())
    with caplog.at_level(logging.DEBUG, logger="patchbay.routing"):
        await rig.run()
        rig.adapter.script("gpt-4o", fail(ErrorClass.AUTH, 401))
        await rig.run()
    records = [r for r in caplog.records if r.name == "patchbay.routing"]
    assert [(r.levelno, r.fields["routing"]["served"]) for r in records] == [  # type: ignore[attr-defined]
        (logging.DEBUG, "openai:main/gpt-4o"),
        (logging.INFO, "anthropic:default/claude-haiku-4-5"),
    ]


async def test_unreadable_credential_fails_that_attempt_only() -> None:
    rig = Rig(two_step_org())

    def credentials(connection: ConnectionView) -> FakeCredential:
        if connection.provider.value == "openai":
            raise RuntimeError("vault record missing")
        return FakeCredential(SECRET)

    rig.executor._credentials = credentials
    _, header = await rig.run()
    assert header == "openai:main/gpt-4o=failed:credential;anthropic:default/claude-haiku-4-5=served"


async def test_chat_chain_entry_without_chat_adapter_is_skipped() -> None:
    org = OrgBuilder(
        connections=[conn("gemini"), conn("openai", "main")],
        matrix={Intent.CHAT: ("gemini/gemini-2.5-flash", "openai/gpt-4o")},
    ).build()
    rig = Rig(org)
    _, header = await rig.run()
    assert (
        header
        == "gemini:default/gemini-2.5-flash=skipped:no_adapter:gemini-generate;openai:main/gpt-4o=served"
    )
