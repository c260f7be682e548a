"""Which STT/TTS engines an org's voice chains hold, in which order, billed to whom."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest

from providers.contract import BillingSource, CredentialSource, ModelRef, ProviderId
from providers.credentials import NoCredential
from providers.http import UpstreamClients
from routing.intents import Intent
from routing.model import ConnectionStatus, ConnectionView, OrgRouting
from tests.voice.fakes import FakeSTT, FakeTTS
from voice.engines import Cloud, InternalEngines, stt_chain, tts_chain, voice_connections
from voice.stt.fallback import FallbackSTT
from voice.tts.fallback import FallbackTTS

INTERNAL = InternalEngines(
    stt=FakeSTT("internal:whisper"), tts=FakeTTS("internal:espeak", sample_rate=22_050)
)


def conn(
    provider: ProviderId, name: str, *, status: ConnectionStatus = ConnectionStatus.ACTIVE, position: int = 0
) -> ConnectionView:
    custom = provider is ProviderId.OPENAI_COMPATIBLE
    return ConnectionView(
        connection_id=f"con_{name}",
        org_id="org_1",
        provider=provider,
        name=name,
        base_url="http://127.0.0.1:9/v1" if custom else None,
        status=status,
        position=position,
        credential_source=CredentialSource.ORG_PRIVATE_ENDPOINT if custom else CredentialSource.ORG_KEY,
        billing_source=BillingSource.PRIVATE if custom else BillingSource.BYOK,
    )


def org(*connections: ConnectionView, matrix: dict[Intent, tuple[ModelRef, ...]] | None = None) -> OrgRouting:
    profiles: dict[ProviderId, tuple[ConnectionView, ...]] = {}
    for c in connections:
        profiles[c.provider] = (*profiles.get(c.provider, ()), c)
    return OrgRouting(
        org_id="org_1",
        tier="pro",
        default_model=None,
        allowlist=None,
        matrix=MappingProxyType(matrix or {}),
        agents=MappingProxyType({}),
        profiles=MappingProxyType(profiles),
        custom=MappingProxyType(
            {c.name: c for c in connections if c.provider is ProviderId.OPENAI_COMPATIBLE}
        ),
    )


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    async with UpstreamClients() as clients:
        yield Cloud(clients, lambda c: NoCredential())


def names(chain: object) -> list[str]:
    assert isinstance(chain, FallbackTTS | FallbackSTT)
    return [e.name for e in chain.engines]


async def test_no_keys_means_internal_engines_only(cloud: Cloud) -> None:
    assert names(tts_chain(None, INTERNAL, cloud)) == ["internal:espeak"]
    assert names(stt_chain(org(), INTERNAL, cloud)) == ["internal:whisper"]
    assert tts_chain(None, INTERNAL, None).sample_rate == 24_000


async def test_elevenlabs_connections_speak_first_without_a_matrix(cloud: Cloud) -> None:
    routing = org(conn(ProviderId.ELEVENLABS, "main"), conn(ProviderId.OPENAI, "chat"))
    chain = tts_chain(routing, INTERNAL, cloud)
    assert names(chain) == ["elevenlabs:main", "internal:espeak"]
    assert isinstance(chain, FallbackTTS) and chain.engines[0].billing_source is BillingSource.BYOK
    # An OpenAI chat key alone never changes who speaks or listens.
    assert names(stt_chain(org(conn(ProviderId.OPENAI, "chat")), INTERNAL, cloud)) == ["internal:whisper"]


async def test_the_matrix_orders_and_picks_models(cloud: Cloud) -> None:
    routing = org(
        conn(ProviderId.ELEVENLABS, "main"),
        conn(ProviderId.OPENAI, "chat"),
        conn(ProviderId.OPENAI_COMPATIBLE, "speechbox"),
        conn(ProviderId.ELEVENLABS, "off", status=ConnectionStatus.DISABLED, position=1),
        matrix={
            Intent.TTS: (ModelRef("speechbox", "kokoro"), ModelRef("elevenlabs", "eleven_turbo_v2_5")),
            Intent.STT: (ModelRef("openai", "gpt-4o-transcribe"),),
        },
    )
    assert names(tts_chain(routing, INTERNAL, cloud)) == [
        "openai_compatible:speechbox",
        "elevenlabs:main",
        "internal:espeak",
    ]
    assert [(c.profile_id, m) for c, m in voice_connections(routing, Intent.TTS)] == [
        ("openai_compatible:speechbox", "kokoro"),
        ("elevenlabs:main", "eleven_turbo_v2_5"),
    ]
    assert names(stt_chain(routing, INTERNAL, cloud)) == ["openai:chat", "internal:whisper"]


async def test_without_a_cloud_pool_only_internal_engines_are_used() -> None:
    assert names(tts_chain(org(conn(ProviderId.ELEVENLABS, "main")), INTERNAL, None)) == ["internal:espeak"]
