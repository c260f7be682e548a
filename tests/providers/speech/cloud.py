"""Building a cloud engine for a test: the canary credential, options from keywords."""

from __future__ import annotations

from typing import Any, TypeVar

from providers.http import Timeouts
from providers.speech.http import HttpAudioEngine
from providers.upstream_pool import UpstreamClients
from tests.emulators.scripted import CanaryCredential

EngineT = TypeVar("EngineT", bound=HttpAudioEngine[Any])


def cloud_engine(
    engine_type: type[EngineT],
    clients: UpstreamClients,
    base_url: str,
    *,
    timeouts: Timeouts | None = None,
    name: str | None = None,
    **options: Any,
) -> EngineT:
    """`engine_type` against `base_url`, with `engine_type.options_type(**options)`."""
    return engine_type(
        clients,
        base_url=base_url,
        credential=CanaryCredential(),
        name=name,
        options=engine_type.options_type(**options),
        timeouts=timeouts,
    )
