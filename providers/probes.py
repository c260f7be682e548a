"""Connection verification probes: is the key good, which models are there, does a tiny prompt work.

Probes use short timeouts and minimal tokens, and keep nothing of what they send or receive
except a pass/fail, a latency, an error class and the model ids found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers import http
from providers.adapters import anthropic_errors_wire, gemini_errors_wire, openai_errors
from providers.adapters.base import ChatAdapter, Endpoint
from providers.auth import add_auth_header
from providers.contract import ErrorClass, WireProtocol, error_class_for_status
from providers.errors import ProviderError
from providers.redaction import secrets_in
from providers.speech.errors import elevenlabs_error
from providers.types import ChatRequest, Message, Role, TextPart
from providers.upstream_pool import UpstreamClients

PROBE_TIMEOUTS = http.Timeouts(connect=5.0, first_byte=15.0, between_chunks=10.0, write=5.0)
PROBE_PROMPT = "Reply with the single word: ok"
PROBE_MAX_TOKENS = 5

Classifier = Callable[[int, bytes, Mapping[str, str], str, Iterable[str]], ProviderError]


def _openai(
    status: int, body: bytes, headers: Mapping[str, str], provider: str, secrets: Iterable[str]
) -> ProviderError:
    return openai_errors.classify_error(status, http.parse_json(body), headers, provider, secrets=secrets)


def _anthropic(
    status: int, body: bytes, headers: Mapping[str, str], provider: str, secrets: Iterable[str]
) -> ProviderError:
    return anthropic_errors_wire.classify_error(status, body, headers, secrets=secrets)


def _gemini(
    status: int, body: bytes, headers: Mapping[str, str], provider: str, secrets: Iterable[str]
) -> ProviderError:
    return gemini_errors_wire.classify_error(status, body, headers, secrets=secrets)


def _elevenlabs(
    status: int, body: bytes, headers: Mapping[str, str], provider: str, secrets: Iterable[str]
) -> ProviderError:
    return elevenlabs_error(status, headers, body, provider=provider, secrets=secrets)


def _by_status(
    status: int, body: bytes, headers: Mapping[str, str], provider: str, secrets: Iterable[str]
) -> ProviderError:
    # A wire without an error dialect of its own: the status alone decides, and no body text
    # is echoed because nothing here knows how to scrub it.
    return ProviderError(
        error_class_for_status(status), f"HTTP {status} from the provider", provider=provider, status=status
    )


CLASSIFIERS: Mapping[WireProtocol, Classifier] = {
    WireProtocol.OPENAI_CHAT: _openai,
    WireProtocol.ANTHROPIC_MESSAGES: _anthropic,
    WireProtocol.GEMINI_GENERATE: _gemini,
    WireProtocol.ELEVENLABS: _elevenlabs,
    WireProtocol.OPENAI_AUDIO: _openai,
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    ok: bool
    latency_ms: float
    error_class: ErrorClass | None = None
    status: int | None = None
    message: str | None = None
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verification:
    results: tuple[ProbeResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def first_failure(self) -> ProbeResult | None:
        return next((r for r in self.results if not r.ok), None)

    @property
    def models(self) -> tuple[str, ...]:
        return next((r.models for r in self.results if r.models), ())

    @property
    def latency_ms(self) -> float:
        return max((r.latency_ms for r in self.results), default=0.0)


def model_ids(protocol: WireProtocol, payload: Any) -> tuple[str, ...]:
    """Model ids out of a provider's model-list response (each wire has its own shape)."""
    if isinstance(payload, dict) and isinstance(payload.get("models"), list):  # Gemini
        names = [m.get("name", "") for m in payload["models"] if isinstance(m, dict)]
        return tuple(n.removeprefix("models/") for n in names if n)
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        return ()
    ids = [
        m.get("id") or m.get("model_id") for m in items if isinstance(m, dict)
    ]  # OpenAI/Anthropic; ElevenLabs
    return tuple(str(i) for i in ids if i)


def _url(endpoint: Endpoint, path: str) -> str:
    return (endpoint.base_url or endpoint.preset.base_url).rstrip("/") + path


async def _get(
    clients: UpstreamClients, endpoint: Endpoint, path: str, purpose: str
) -> tuple[http.UpstreamResponse, float]:
    headers = {**endpoint.preset.extra_headers, **endpoint.extra_headers, "accept": "application/json"}
    add_auth_header(headers, endpoint.preset.auth_style, endpoint.credential, purpose)
    secrets = secrets_in(headers)
    started = time.perf_counter()
    provider = endpoint.preset.id.value
    response = await http.request(
        clients, "GET", _url(endpoint, path), headers=headers, timeouts=PROBE_TIMEOUTS, provider=provider
    )
    elapsed = (time.perf_counter() - started) * 1000
    if not 200 <= response.status < 300:
        classify = CLASSIFIERS.get(endpoint.preset.protocol, _by_status)
        raise classify(response.status, response.body, response.headers, provider, secrets)
    return response, elapsed


def _failed(name: str, exc: ProviderError, started: float) -> ProbeResult:
    elapsed = (time.perf_counter() - started) * 1000
    return ProbeResult(name, False, elapsed, exc.error_class, exc.status, exc.message)


async def test_auth(clients: UpstreamClients, endpoint: Endpoint) -> ProbeResult:
    """A cheap authenticated read (never a paid call)."""
    path = endpoint.preset.auth_check_path
    started = time.perf_counter()
    if path is None:
        return ProbeResult("test_auth", True, 0.0)
    try:
        _, elapsed = await _get(clients, endpoint, path, "verify")
    except ProviderError as exc:
        return _failed("test_auth", exc, started)
    return ProbeResult("test_auth", True, elapsed)


async def list_models(clients: UpstreamClients, endpoint: Endpoint) -> ProbeResult:
    path = endpoint.preset.model_list_path
    started = time.perf_counter()
    if path is None:
        return ProbeResult("list_models", True, 0.0)
    try:
        response, elapsed = await _get(clients, endpoint, path, "verify")
    except ProviderError as exc:
        return _failed("list_models", exc, started)
    try:
        models = model_ids(endpoint.preset.protocol, response.json())
    except ProviderError as exc:
        return _failed("list_models", exc, started)
    return ProbeResult("list_models", True, elapsed, models=models)


async def test_text(adapter: ChatAdapter, endpoint: Endpoint, model: str) -> ProbeResult:
    """One tiny completion: proves the model answers on this key, costs a handful of tokens."""
    request = ChatRequest(
        model=model,
        messages=(Message(Role.USER, (TextPart(PROBE_PROMPT),)),),
        max_output_tokens=PROBE_MAX_TOKENS,
    )
    started = time.perf_counter()
    try:
        await adapter.complete(request, endpoint)
    except ProviderError as exc:
        return _failed("test_text", exc, started)
    return ProbeResult("test_text", True, (time.perf_counter() - started) * 1000)
