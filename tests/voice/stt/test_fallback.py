from __future__ import annotations

import asyncio

import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STTEngine
from tests.voice.fakes import FakeSTT
from voice.stt import Attempt, FallbackSTT

AUDIO = b"\x00\x00" * 8_000


def failure(error_class: ErrorClass, engine: str = "x") -> ProviderError:
    return ProviderError(error_class, "scripted failure", provider=engine)


async def test_first_healthy_engine_serves_and_is_reported() -> None:
    served: list[STTEngine] = []
    cloud = FakeSTT(
        "elevenlabs:default", error=failure(ErrorClass.QUOTA_EXHAUSTED), billing_source=BillingSource.BYOK
    )
    local = FakeSTT("internal:pocketsphinx", text="hello from local")
    spare = FakeSTT("internal:whisper")
    chain = FallbackSTT([cloud, local, spare], on_served=served.append)

    transcript = await chain.transcribe(AUDIO, language="en")

    assert transcript.text == "hello from local"
    assert transcript.engine == "internal:pocketsphinx"
    assert chain.last_served is local and served == [local]
    assert chain.billing_source is BillingSource.PLATFORM
    assert chain.last_attempts == (
        Attempt("elevenlabs:default", ErrorClass.QUOTA_EXHAUSTED),
        Attempt("internal:pocketsphinx", None),
    )
    assert len(cloud.calls) == len(local.calls) == 1
    assert spare.calls == []


async def test_tries_engines_in_list_order() -> None:
    order: list[str] = []
    engines = [FakeSTT(f"fake:{i}", error=failure(ErrorClass.SERVER_ERROR)) for i in range(3)]
    chain = FallbackSTT(engines, on_attempt=lambda attempt: order.append(attempt.engine))
    with pytest.raises(ProviderError):
        await chain.transcribe(AUDIO)
    assert order == ["fake:0", "fake:1", "fake:2"]


async def test_unexpected_engine_crash_falls_back() -> None:
    chain = FallbackSTT([FakeSTT("fake:crash", error=KeyError("boom")), FakeSTT("fake:ok")])
    transcript = await chain.transcribe(AUDIO)
    assert transcript.engine == "fake:ok"
    assert chain.last_attempts[0] == Attempt("fake:crash", ErrorClass.SERVER_ERROR)


@pytest.mark.parametrize("error_class", [ErrorClass.CONTENT_FILTER, ErrorClass.CONTEXT_LENGTH])
async def test_fail_fast_errors_do_not_fall_back(error_class: ErrorClass) -> None:
    second = FakeSTT("fake:second")
    chain = FallbackSTT([FakeSTT("fake:first", error=failure(error_class)), second])
    with pytest.raises(ProviderError) as caught:
        await chain.transcribe(AUDIO)
    assert caught.value.error_class is error_class
    assert second.calls == []
    assert chain.last_served is None


async def test_all_engines_failing_raises_one_error_naming_each_attempt() -> None:
    chain = FallbackSTT(
        [
            FakeSTT("fake:a", error=failure(ErrorClass.RATE_LIMIT)),
            FakeSTT("fake:b", error=failure(ErrorClass.NETWORK)),
        ]
    )
    with pytest.raises(ProviderError) as caught:
        await chain.transcribe(AUDIO)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert caught.value.provider == chain.name
    assert "fake:a=rate_limit" in caught.value.message and "fake:b=network" in caught.value.message
    # Before any segment was served the chain bills like its primary engine.
    assert chain.billing_source is BillingSource.PLATFORM


async def test_a_stalled_engine_times_out_and_the_next_serves() -> None:
    stalled = FakeSTT("fake:stalled", gate=asyncio.Event())
    chain = FallbackSTT([stalled, FakeSTT("fake:ok")], attempt_timeout=0.05)
    transcript = await chain.transcribe(AUDIO)
    assert transcript.engine == "fake:ok"
    assert chain.last_attempts[0] == Attempt("fake:stalled", ErrorClass.TIMEOUT)


def test_needs_an_engine() -> None:
    with pytest.raises(ValueError):
        FallbackSTT([])
