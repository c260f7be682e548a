"""A turn's streamed STT as one routed segment, against the ElevenLabs emulator over loopback:
which plans stream, the committed transcript billed by the seconds streamed, fallback to the
rest of the chain over the kept audio, and a stream dropped before its commit recording nothing."""

from __future__ import annotations

import numpy as np
import pytest

from billing.usage import Segment, SegmentStatus
from providers.contract import BillingSource
from providers.upstream_pool import UpstreamClients
from routing.intents import Intent
from routing.model import OrgRouting
from routing.router import CallContext
from routing.runner import Run
from routing.speech_stt_stream import split_stt_plan
from routing.trace import AttemptTrace
from tests.emulators import elevenlabs as el
from tests.emulators.scripted import Scenario
from tests.routing.fakes import OrgBuilder, conn
from tests.routing.test_speech import Rig

CTX = CallContext(org_id="org_1", request_id="sess_1", turn_id="turn_1", intent=Intent.VOICE_TURN)


def org(url: str, *stt: str) -> OrgRouting:
    return OrgBuilder(connections=[conn("elevenlabs", "org", base_url=url)], matrix={Intent.STT: stt}).build()


def speech_24k(seconds: float) -> bytes:
    t = np.arange(int(24_000 * seconds)) / 24_000
    return (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()


async def test_only_a_plan_whose_first_candidate_streams_is_split(
    clients: UpstreamClients, eleven_url: str
) -> None:
    rig = Rig(org(eleven_url), clients)
    streaming = org(eleven_url, "elevenlabs/scribe_v2_realtime", "elevenlabs/scribe_v1")
    split = split_stt_plan(await rig.speech.plan(streaming, Intent.STT, None))
    assert split is not None
    lead, rest = split
    assert [a.model for a in lead.attempts] == ["scribe_v2_realtime"]
    assert [str(a.ref) for a in rest.attempts] == ["elevenlabs/scribe_v1", "internal/whisper"]
    batch = org(eleven_url, "elevenlabs/scribe_v1", "elevenlabs/scribe_v2_realtime")
    assert split_stt_plan(await rig.speech.plan(batch, Intent.STT, None)) is None


async def test_a_streamed_turn_is_one_segment_billed_by_the_seconds_streamed(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.recorder.script(Scenario(transcript="a table for two"))
    rig = Rig(org(eleven_url, "elevenlabs/scribe_v2_realtime"), clients)
    settled: list[Run] = []
    run = Run(AttemptTrace())
    stream = await rig.speech.open_stt_stream(
        CTX, sample_rate=24_000, language="en", run=run, settled=settled.append
    )
    assert stream is not None
    audio = speech_24k(1.5)
    for i in range(0, len(audio), 960):
        stream.feed(audio[i : i + 960])
    transcript = await stream.commit()
    await stream.aclose()
    assert transcript.text == "a table for two"
    assert run.trace.header() == "elevenlabs:org/scribe_v2_realtime=served" and settled == [run]
    [segment] = rig.usage.segments
    assert (segment.segment, segment.profile_id, segment.model, segment.status) == (
        Segment.STT,
        "elevenlabs:org",
        "scribe_v2_realtime",
        SegmentStatus.OK,
    )
    assert segment.audio_seconds == 1.5 and segment.turn_id == "turn_1"
    assert rig.preflight.requests[0].audio_seconds == 30.0  # held up front, length unknown
    assert [source for source, _ in rig.preflight.hold_.settled] == [BillingSource.BYOK]


async def test_a_stream_that_cannot_open_hands_the_kept_audio_to_the_rest_of_the_chain(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    eleven.realtime_stt.valid_keys = {"sk_not_this_one"}  # the socket refuses; HTTP Scribe accepts
    eleven.recorder.script(Scenario(), Scenario(transcript="from http scribe"))
    rig = Rig(org(eleven_url, "elevenlabs/scribe_v2_realtime", "elevenlabs/scribe_v1"), clients)
    run = Run(AttemptTrace())
    stream = await rig.speech.open_stt_stream(CTX, sample_rate=24_000, language=None, run=run)
    assert stream is not None
    stream.feed(speech_24k(1.0))
    transcript = await stream.commit()
    assert transcript.text == "from http scribe"
    assert (
        run.trace.header() == "elevenlabs:org/scribe_v2_realtime=failed:auth;elevenlabs:org/scribe_v1=served"
    )
    upload = eleven.recorder.requests[1]
    assert upload.path == "/v1/speech-to-text"
    assert len(upload.files["file"]) == pytest.approx(44 + 32_000, abs=64)  # the second, at 16 kHz
    [segment] = rig.usage.segments
    assert (segment.model, segment.audio_seconds) == ("scribe_v1", 1.0)


async def test_a_stream_dropped_before_its_commit_records_nothing(
    clients: UpstreamClients, eleven_url: str, eleven: el.ElevenLabsEmulator
) -> None:
    rig = Rig(org(eleven_url, "elevenlabs/scribe_v2_realtime"), clients)
    stream = await rig.speech.open_stt_stream(CTX, sample_rate=16_000, language=None)
    assert stream is not None
    stream.feed(bytes(3200))
    await stream.aclose()
    await stream.aclose()
    assert rig.usage.segments == [] and rig.preflight.hold_.released == 1
    assert eleven.realtime_stt.committed == 0
