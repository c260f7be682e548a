"""Speech segments through the one attempt runner, against the ElevenLabs emulator over loopback.

What chat already had now holds for STT and TTS: fallback only before the first output, a
refused key disables the profile (so later segments skip it until the window ends), fail-fast
errors stop the plan, one usage segment per segment billed to whoever served it, and an
agent's own speech chain wins over the org's.
"""

from __future__ import annotations

import numpy as np
import pytest

from billing.usage import Segment, SegmentStatus
from providers.contract import BillingSource, ErrorClass, ModelRef
from providers.errors import ProviderError
from providers.speech.base import Transcript
from providers.speech.caller import SPEECH_CALLER
from providers.upstream_pool import UpstreamClients
from routing.catalog import default_catalog
from routing.cooldown_store import InProcessCooldownStore
from routing.errors import AllAttemptsFailedError
from routing.executor import Executor
from routing.intents import Intent
from routing.model import AgentRouting, OrgRouting
from routing.registry import OrgEntry
from routing.resolver import Resolver
from routing.router import CallContext, Router
from routing.runner import Run
from routing.speech import OUTPUT_RATE, BuiltIn, SpeechRouter, SpeechTimeouts
from routing.trace import AttemptTrace
from tests.emulators import elevenlabs as el
from tests.emulators.scripted import CanaryCredential, Scenario, disconnect_after, slow_first_byte
from tests.emulators.tcp_proxy import ClosesKeptConnections
from tests.routing.fakes import FakePreflight, FakeWallClock, OrgBuilder, Recorder, conn
from tests.voice.fakes import FakeSTT, FakeTTS

TEXT = "Your table is booked."
SPEECH = bytes(32000)  # one second of PCM16 at 16 kHz


class StaticRegistry:
    def __init__(self, org: OrgRouting, agents: dict[str, str] | None = None) -> None:
        self.entry = OrgEntry(routing=org, version=1, agent_names=agents or {})

    async def get(self, org_id: str) -> OrgEntry:
        return self.entry


class Rig:
    def __init__(
        self,
        org: OrgRouting,
        clients: UpstreamClients,
        *,
        agents: dict[str, str] | None = None,
        timeouts: SpeechTimeouts | None = None,
    ) -> None:
        self.clock = FakeWallClock()
        self.store = InProcessCooldownStore()
        self.usage = Recorder()
        self.preflight = FakePreflight()
        resolver = Resolver(default_catalog())
        executor = Executor(
            resolver=resolver,
            store=self.store,
            credentials=lambda c: CanaryCredential(),
            adapters={},
            clock=self.clock,
        )
        router = Router(
            registry=StaticRegistry(org, agents),  # type: ignore[arg-type]
            resolver=resolver,
            executor=executor,
            usage=self.usage,
            preflight=self.preflight,
        )
        # The built-in TTS speaks at 22.05 kHz, as espeak-ng does: the chain resamples it.
        self.tts = FakeTTS("internal:espeak", sample_rate=22_050)
        self.stt = FakeSTT("internal:whisper", text="from the built-in engine")
        self.speech = SpeechRouter(
            router,
            builtin=lambda: BuiltIn(stt=self.stt, tts=self.tts),
            clients=clients,
            credentials=lambda c: CanaryCredential(),
            timeouts=timeouts,
        )

    async def speak(self, ctx: CallContext | None = None, text: str = TEXT) -> tuple[bytes, Run]:
        run = Run(AttemptTrace())
        chunks = [
            c
            async for c in self.speech.synthesize(
                ctx or CallContext(org_id="org_1"), text, voice=None, run=run
            )
        ]
        return b"".join(chunks), run


def eleven_org(url: str, **builder: object) -> OrgRouting:
    return OrgBuilder(
        connections=[conn("elevenlabs", "org", base_url=url)],
        matrix={Intent.TTS: ("elevenlabs/eleven_flash_v2_5",), Intent.STT: ("elevenlabs/scribe_v1",)},
        **builder,  # type: ignore[arg-type]
    ).build()


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        (el.too_many_concurrent(), "failed:rate_limit"),
        (el.system_busy(), "failed:overloaded"),
        (el.quota_exceeded(), "failed:quota_exhausted"),
        (el.invalid_api_key(), "failed:auth"),
        (el.server_error(), "failed:server_error"),
    ],
)
async def test_a_failure_before_audio_falls_back_to_the_builtin_engine_billed_to_the_platform(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator, scenario: Scenario, reason: str
) -> None:
    eleven.recorder.script(scenario)
    rig = Rig(eleven_org(eleven_url), clients)
    audio, run = await rig.speak()
    assert run.trace.header() == f"elevenlabs:org/eleven_flash_v2_5={reason};internal:espeak/espeak=served"
    # The built-in engine's 22.05 kHz audio reaches the caller at the chain's rate.
    expected = len(rig.tts.audio()) // 2 * OUTPUT_RATE / 22_050
    assert len(audio) // 2 == pytest.approx(expected, rel=0.01)
    [segment] = rig.usage.segments
    assert (segment.segment, segment.provider, segment.profile_id) == (
        Segment.TTS,
        "internal",
        "internal:espeak",
    )
    assert (segment.billing_source, segment.characters, segment.status) == (
        BillingSource.PLATFORM,
        len(TEXT),
        SegmentStatus.OK,
    )
    assert rig.preflight.requests[0].segment == "tts"
    assert [source for source, _ in rig.preflight.hold_.settled] == [BillingSource.PLATFORM]


async def test_a_refused_key_is_not_called_again_until_its_disable_window_ends(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.invalid_api_key())
    rig = Rig(eleven_org(eleven_url), clients)
    await rig.speak()
    assert len(eleven.recorder.requests) == 1

    for _ in range(3):  # every later sentence, of this turn and of later ones
        _, run = await rig.speak()
        assert (
            run.trace.header()
            == "elevenlabs:org/eleven_flash_v2_5=skipped:disabled:auth;internal:espeak/espeak=served"
        )
    assert len(eleven.recorder.requests) == 1

    state = (await rig.store.get_many("org_1", ["elevenlabs:org"]))["elevenlabs:org"]
    assert state.disabled_until is not None
    rig.clock.now = state.disabled_until + 1
    _, run = await rig.speak()
    assert run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=served"
    assert len(eleven.recorder.requests) == 2


async def test_stt_a_refused_key_falls_back_and_is_then_skipped(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.invalid_api_key())
    rig = Rig(eleven_org(eleven_url), clients)
    ctx = CallContext(org_id="org_1", request_id="sess_1", turn_id="turn_1", intent=Intent.VOICE_TURN)
    run = Run(AttemptTrace())
    transcript = await rig.speech.transcribe(ctx, SPEECH, language="en", run=run)
    assert transcript.text == "from the built-in engine"
    assert run.trace.header() == "elevenlabs:org/scribe_v1=failed:auth;internal:whisper/whisper=served"
    run = Run(AttemptTrace())
    await rig.speech.transcribe(ctx, SPEECH, language="en", run=run)
    assert (
        run.trace.header() == "elevenlabs:org/scribe_v1=skipped:disabled:auth;internal:whisper/whisper=served"
    )
    assert len(eleven.recorder.requests) == 1
    first = rig.usage.segments[0]
    assert (first.segment, first.profile_id, first.audio_seconds) == (Segment.STT, "internal:whisper", 1.0)
    assert (first.request_id, first.turn_id, first.intent) == ("sess_1", "turn_1", "voice_turn")


async def test_healthy_elevenlabs_serves_at_the_chain_rate_billed_to_the_org(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    rig = Rig(eleven_org(eleven_url), clients)
    audio, run = await rig.speak()
    assert run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=served"
    assert eleven.recorder.requests[0].query.get("output_format") == f"pcm_{OUTPUT_RATE}"
    samples = np.frombuffer(audio, dtype="<i2")
    peak_hz = np.argmax(np.abs(np.fft.rfft(samples))) * OUTPUT_RATE / len(samples)
    assert abs(peak_hz - 440) < 10
    assert rig.tts.state.calls == []
    [segment] = rig.usage.segments
    assert (segment.provider, segment.billing_source, segment.model) == (
        "elevenlabs",
        BillingSource.BYOK,
        "eleven_flash_v2_5",
    )


async def test_no_fallback_once_audio_went_out_and_the_segment_is_billed_as_failed(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(disconnect_after(2))
    rig = Rig(eleven_org(eleven_url), clients)
    received: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in rig.speech.synthesize(CallContext(org_id="org_1"), TEXT, voice=None):
            received.append(chunk)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert received and rig.tts.state.calls == []
    [segment] = rig.usage.segments
    assert (segment.profile_id, segment.status) == ("elevenlabs:org", SegmentStatus.FAILED)


async def test_fail_fast_errors_stop_the_plan(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(el.validation_error())
    rig = Rig(eleven_org(eleven_url), clients)
    with pytest.raises(AllAttemptsFailedError) as caught:
        await rig.speak()
    assert caught.value.stopped
    assert rig.tts.state.calls == []
    assert rig.usage.segments == [] and rig.preflight.hold_.released == 1


async def test_a_silent_engine_hands_over_at_the_first_audio_timeout_and_its_stream_is_closed(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    # The emulator holds the first byte far longer than the engine may wait, so the timeout
    # is the only way out; the engine's own HTTP deadlines are longer still.
    eleven.recorder.script(slow_first_byte(120.0))
    rig = Rig(eleven_org(eleven_url), clients, timeouts=SpeechTimeouts(tts_first_audio=1.0))
    _, run = await rig.speak()
    assert eleven.recorder.requests  # it was asked, and then hung up on
    assert (
        run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=failed:timeout;internal:espeak/espeak=served"
    )
    assert await eleven.recorder.wait_disconnect(within=30.0)


async def test_an_agents_own_tts_chain_wins_and_others_use_the_orgs(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    agent = AgentRouting(
        name="support", chains={Intent.TTS: (ModelRef.parse("elevenlabs/eleven_multilingual_v2"),)}
    )
    rig = Rig(eleven_org(eleven_url, agents={"support": agent}), clients, agents={"agt_1": "support"})
    _, run = await rig.speak(CallContext(org_id="org_1", agent_id="agt_1"))
    assert run.trace.header() == "elevenlabs:org/eleven_multilingual_v2=served"
    assert run.trace.source == "agent:support"
    _, run = await rig.speak(CallContext(org_id="org_1"))
    assert run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=served"
    assert [r.json["model_id"] for r in eleven.recorder.requests] == [
        "eleven_multilingual_v2",
        "eleven_flash_v2_5",
    ]


async def test_with_no_chain_the_orgs_elevenlabs_key_speaks_and_without_keys_the_builtin_engine(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    keyed = Rig(OrgBuilder(connections=[conn("elevenlabs", "org", base_url=eleven_url)]).build(), clients)
    _, run = await keyed.speak()
    assert run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=served"
    # A chat key alone never changes who speaks.
    keyless = Rig(
        OrgBuilder(connections=[conn("openai", "main")], default_model="openai/gpt-4o").build(), clients
    )
    _, run = await keyless.speak()
    assert run.trace.header() == "internal:espeak/espeak=served"


async def test_the_builtin_stt_runs_on_behalf_of_the_callers_key(clients: UpstreamClients) -> None:
    class Witness(FakeSTT):
        async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
            self.caller = SPEECH_CALLER.get()
            return await super()._transcribe(pcm16_16k, language)

    rig = Rig(OrgBuilder().build(), clients)
    rig.stt = witness = Witness("internal:whisper")
    await rig.speech.transcribe(CallContext(org_id="org_1", api_key_id="key_a"), SPEECH, language="en")
    assert witness.caller == "key_a"
    assert SPEECH_CALLER.get() is None


class SpeculatingSTT(FakeSTT):
    def __init__(self) -> None:
        super().__init__("internal:whisper")
        self.prefetched: list[tuple[int, str | None]] = []

    async def prefetch(
        self, pcm16_16k: bytes, *, language: str | None = None, previous: str | None = None
    ) -> str | None:
        self.prefetched.append((len(pcm16_16k), previous))
        return "so far"


async def test_a_speculative_decode_goes_to_the_builtin_engine_only_when_it_would_serve(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    ctx = CallContext(org_id="org_1", request_id="sess_1")
    builtin_only = Rig(OrgBuilder().build(), clients)
    builtin_only.stt = stt = SpeculatingSTT()
    assert await builtin_only.speech.prefetch(ctx, SPEECH, language="en", previous="Hi.") == "so far"
    assert stt.prefetched == [(len(SPEECH), "Hi.")]
    # With a cloud engine first, nothing speculates (it would be billed) and nothing is called.
    cloud_first = Rig(eleven_org(eleven_url), clients)
    cloud_first.stt = other = SpeculatingSTT()
    assert await cloud_first.speech.prefetch(ctx, SPEECH, language="en") is None
    assert other.prefetched == [] and eleven.recorder.requests == []
    assert builtin_only.usage.segments == [] and cloud_first.usage.segments == []


async def test_a_kept_connection_closed_before_the_reply_keeps_the_voice(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    """Speech retries nothing, but a pooled connection the engine closed as the next sentence
    went out is replaced at once: the listener keeps the same voice, not the built-in one."""
    host, port = eleven_url.removeprefix("http://").split(":")
    async with ClosesKeptConnections(host, int(port)) as proxy:
        rig = Rig(eleven_org(proxy.url(eleven_url)), clients)
        for _ in range(2):  # the second sentence on the kept connection, which the proxy closes
            audio, run = await rig.speak()
            assert run.trace.header() == "elevenlabs:org/eleven_flash_v2_5=served"
            assert audio
    assert proxy.cut == 1 and proxy.accepted == 2
    assert len(eleven.recorder.requests) == 2
    assert rig.tts.state.calls == [] and rig.clock.slept == []
