"""Verify a connection: run the probes and store the outcome as its health metadata.

The base URL is checked first; the probes then go through `VerifyTools.clients`, which must
be the guarded pool (the server's and the CLI's are the same one), so an address that changed
between the check and the connect is refused there too. Either refusal is the `guard` probe.

Stored: status, latency, error class, when, and the model ids found. Never the prompt or the
model's answer.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from foundation.db import utcnow
from providers import probes
from providers.adapters.base import ChatAdapter, Endpoint
from providers.contract import PRESETS, Capability, ErrorClass, ProviderId, WireProtocol
from providers.credentials import Credential, NoCredential
from providers.upstream_pool import UpstreamClients
from routing.catalog import Catalog, ModelInfo
from routing.errors import BaseUrlRefusedError
from routing.guard import GuardPolicy, Resolve, check_base_url, resolve_host
from routing.tables import Connection


@dataclass(frozen=True, slots=True)
class VerifyTools:
    clients: UpstreamClients
    adapters: Mapping[WireProtocol, ChatAdapter]
    catalog: Catalog
    guard: GuardPolicy
    resolve: Resolve = resolve_host
    """The DNS the base-URL check asks; the pool's connector should ask the same."""


def probe_model(row: Connection, catalog: Catalog, listed: tuple[str, ...]) -> str | None:
    """The model for `test_text`: a declared one, else the catalog's cheapest text model, else a listed one."""
    declared = [m["id"] for m in row.models or [] if Capability.TEXT.value in m.get("capabilities", [])]
    if declared:
        return str(declared[0])
    provider = ProviderId(row.provider)
    known = [
        info for info in catalog.models.get(provider, {}).values() if Capability.TEXT in info.capabilities
    ]
    if known:
        return min(known, key=_input_price).id
    return listed[0] if listed else None


def _input_price(info: ModelInfo) -> float:
    return info.price.input if info.price and info.price.input is not None else math.inf


ExtraProbe = Callable[[Endpoint], Awaitable[probes.ProbeResult]]


def speaks(row: Connection) -> bool:
    """Whether a connection serves speech: ElevenLabs, or an endpoint that declares STT/TTS models."""
    if row.provider == ProviderId.ELEVENLABS.value:
        return True
    voice = {Capability.STT.value, Capability.TTS.value}
    return any(voice & set(m.get("capabilities", [])) for m in row.models or [])


async def verify(
    row: Connection,
    credential: Credential | None,
    tools: VerifyTools,
    *,
    model: str | None = None,
    extra_probes: Sequence[ExtraProbe] = (),
    text: bool = True,
) -> probes.Verification:
    """Run test_auth, list_models, test_text (chat providers; not with `text=False`, the
    scheduled probe's cheap form that generates nothing) and `extra_probes` (e.g. the voice
    probe) when auth passed; record health on `row`."""
    preset = PRESETS[ProviderId(row.provider)]
    endpoint = Endpoint(
        preset=preset,
        base_url=row.base_url or preset.base_url,
        credential=credential or NoCredential(),
        label=row.profile_id,
    )
    results: list[probes.ProbeResult] = []
    try:
        if row.base_url:
            await check_base_url(row.base_url, tools.guard, tools.resolve)
        await _probe(endpoint, preset.protocol, row, tools, model, extra_probes, results, text=text)
    except BaseUrlRefusedError as exc:
        results.append(probes.ProbeResult("guard", False, 0.0, ErrorClass.PERMISSION, None, str(exc)))
    return _record(row, probes.Verification(tuple(results)))


async def _probe(
    endpoint: Endpoint,
    protocol: WireProtocol,
    row: Connection,
    tools: VerifyTools,
    model: str | None,
    extra_probes: Sequence[ExtraProbe],
    results: list[probes.ProbeResult],
    *,
    text: bool,
) -> None:
    auth = await probes.test_auth(tools.clients, endpoint)
    results.append(auth)
    listed = await probes.list_models(tools.clients, endpoint)
    results.append(listed)
    adapter = tools.adapters.get(protocol)
    if auth.ok and adapter is not None and text:
        chosen = model or probe_model(row, tools.catalog, listed.models)
        if chosen is not None:
            results.append(await probes.test_text(adapter, endpoint, chosen))
    if auth.ok:
        for probe in extra_probes:
            results.append(await probe(endpoint))


def _record(row: Connection, outcome: probes.Verification) -> probes.Verification:
    failure = outcome.first_failure
    row.health_status = "ok" if failure is None else "failed"
    row.health_error_class = failure.error_class.value if failure and failure.error_class else None
    row.health_latency_ms = round(outcome.latency_ms)
    row.health_checked_at = utcnow()
    row.health_models = list(outcome.models) or row.health_models
    return outcome
