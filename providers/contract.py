"""The canonical provider contract.

This module is the single place where Patchbay defines provider ids, wire protocols,
capabilities, credential kinds and sources, billing sources and the normalized error
taxonomy. Every other module imports these names; none redefines them. `docs/contract.md`
documents each entry and `tests/providers/test_contract.py` keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class ProviderId(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OPENROUTER = "openrouter"
    XAI = "xai"
    MISTRAL = "mistral"
    MOONSHOT = "moonshot"
    ELEVENLABS = "elevenlabs"
    OPENAI_COMPATIBLE = "openai_compatible"
    INTERNAL = "internal"


class WireProtocol(StrEnum):
    OPENAI_CHAT = "openai-chat"
    ANTHROPIC_MESSAGES = "anthropic-messages"
    GEMINI_GENERATE = "gemini-generate"
    ELEVENLABS = "elevenlabs"
    OPENAI_AUDIO = "openai-audio"
    INTERNAL = "internal"


class Capability(StrEnum):
    TEXT = "text"
    VISION = "vision"
    AUDIO_IN = "audio_in"
    AUDIO_OUT = "audio_out"
    TOOLS = "tools"
    JSON = "json"
    STT = "stt"
    TTS = "tts"


MODEL_CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.TEXT,
        Capability.VISION,
        Capability.AUDIO_IN,
        Capability.AUDIO_OUT,
        Capability.TOOLS,
        Capability.JSON,
    }
)
VOICE_ROLES: frozenset[Capability] = frozenset({Capability.STT, Capability.TTS})


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    BEARER_TOKEN = "bearer_token"
    OAUTH_TOKEN = "oauth_token"
    NONE = "none"


class CredentialSource(StrEnum):
    """Who owns the credential a connection uses; this decides where the cost lands."""

    PLATFORM_KEY = "platform_key"
    ORG_KEY = "org_key"
    ORG_PRIVATE_ENDPOINT = "org_private_endpoint"
    ENV_REFERENCE = "env_reference"


class BillingSource(StrEnum):
    PLATFORM = "platform"
    BYOK = "byok"
    PRIVATE = "private"


_BILLING_BY_CREDENTIAL_SOURCE: Mapping[CredentialSource, BillingSource] = MappingProxyType(
    {
        CredentialSource.PLATFORM_KEY: BillingSource.PLATFORM,
        CredentialSource.ORG_KEY: BillingSource.BYOK,
        CredentialSource.ORG_PRIVATE_ENDPOINT: BillingSource.PRIVATE,
        # An environment reference is resolved from the server's own environment, which
        # belongs to whoever operates the server: the platform.
        CredentialSource.ENV_REFERENCE: BillingSource.PLATFORM,
    }
)


def billing_source_for(source: CredentialSource) -> BillingSource:
    """The billing source of a segment is a function of the credential that served it."""
    return _BILLING_BY_CREDENTIAL_SOURCE[source]


def credential_source_for(
    provider: ProviderId, *, org_owned: bool, env_reference: bool = False
) -> CredentialSource:
    """Classify a connection's credential when it is created.

    Built-in engines and platform connections bill to the platform; an org's connection to a
    custom endpoint is private; an org's key for a public provider is BYOK.
    """
    if env_reference:
        return CredentialSource.ENV_REFERENCE
    if provider is ProviderId.INTERNAL or not org_owned:
        return CredentialSource.PLATFORM_KEY
    if provider is ProviderId.OPENAI_COMPATIBLE:
        return CredentialSource.ORG_PRIVATE_ENDPOINT
    return CredentialSource.ORG_KEY


class ErrorClass(StrEnum):
    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    INVALID_REQUEST = "invalid_request"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    NETWORK = "network"


class ErrorAction(StrEnum):
    """What the router does with a failure of this class (docs/contract.md#error-classes)."""

    RETRY = "retry"
    FALLBACK = "fallback"
    FAIL_FAST = "fail_fast"


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    action: ErrorAction
    retryable: bool
    fallback_eligible: bool


def _policy(action: ErrorAction) -> ErrorPolicy:
    return ErrorPolicy(
        action=action,
        retryable=action is ErrorAction.RETRY,
        fallback_eligible=action is not ErrorAction.FAIL_FAST,
    )


ERROR_POLICY: Mapping[ErrorClass, ErrorPolicy] = MappingProxyType(
    {
        ErrorClass.AUTH: _policy(ErrorAction.FALLBACK),
        ErrorClass.PERMISSION: _policy(ErrorAction.FALLBACK),
        ErrorClass.NOT_FOUND: _policy(ErrorAction.FALLBACK),
        ErrorClass.RATE_LIMIT: _policy(ErrorAction.RETRY),
        ErrorClass.QUOTA_EXHAUSTED: _policy(ErrorAction.FALLBACK),
        ErrorClass.CONTEXT_LENGTH: _policy(ErrorAction.FAIL_FAST),
        ErrorClass.CONTENT_FILTER: _policy(ErrorAction.FAIL_FAST),
        ErrorClass.INVALID_REQUEST: _policy(ErrorAction.FAIL_FAST),
        ErrorClass.TIMEOUT: _policy(ErrorAction.RETRY),
        ErrorClass.OVERLOADED: _policy(ErrorAction.RETRY),
        ErrorClass.SERVER_ERROR: _policy(ErrorAction.RETRY),
        ErrorClass.NETWORK: _policy(ErrorAction.RETRY),
    }
)

HTTP_STATUS_CLASSES: Mapping[int, ErrorClass] = MappingProxyType(
    {
        400: ErrorClass.INVALID_REQUEST,
        401: ErrorClass.AUTH,
        402: ErrorClass.QUOTA_EXHAUSTED,
        403: ErrorClass.PERMISSION,
        404: ErrorClass.NOT_FOUND,
        408: ErrorClass.TIMEOUT,
        413: ErrorClass.INVALID_REQUEST,
        422: ErrorClass.INVALID_REQUEST,
        429: ErrorClass.RATE_LIMIT,
        500: ErrorClass.SERVER_ERROR,
        502: ErrorClass.SERVER_ERROR,
        503: ErrorClass.OVERLOADED,
        504: ErrorClass.TIMEOUT,
        # Anthropic's "overloaded"; other vendors behind the same edges send it too.
        529: ErrorClass.OVERLOADED,
    }
)
"""The one HTTP status table every wire's error dialect falls back on."""


def error_class_for_status(status: int) -> ErrorClass:
    """What an HTTP status alone says, for when the body says nothing more specific.

    A status outside the table is the provider failing if it is a 5xx and our request otherwise.
    """
    known = HTTP_STATUS_CLASSES.get(status)
    if known is not None:
        return known
    return ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.INVALID_REQUEST


class AuthStyle(StrEnum):
    """How a credential travels on the wire."""

    BEARER = "bearer"
    X_API_KEY = "x-api-key"
    X_GOOG_API_KEY = "x-goog-api-key"
    XI_API_KEY = "xi-api-key"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    """Defaults for one provider id; a connection may override the base URL."""

    id: ProviderId
    display_name: str
    protocol: WireProtocol
    base_url: str
    auth_style: AuthStyle
    model_list_path: str | None
    auth_check_path: str | None
    credential_kinds: frozenset[CredentialKind]
    voice_roles: frozenset[Capability] = frozenset()
    extra_headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    audio_protocol: WireProtocol | None = None


_KEYED = frozenset({CredentialKind.API_KEY})
_BEARER_KINDS = frozenset({CredentialKind.API_KEY, CredentialKind.BEARER_TOKEN, CredentialKind.OAUTH_TOKEN})

ANTHROPIC_VERSION = "2023-06-01"

PRESETS: Mapping[ProviderId, ProviderPreset] = MappingProxyType(
    {
        ProviderId.OPENAI: ProviderPreset(
            id=ProviderId.OPENAI,
            display_name="OpenAI",
            protocol=WireProtocol.OPENAI_CHAT,
            base_url="https://api.openai.com/v1",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            auth_check_path="/models",
            credential_kinds=_BEARER_KINDS,
            voice_roles=frozenset({Capability.STT, Capability.TTS}),
            audio_protocol=WireProtocol.OPENAI_AUDIO,
        ),
        ProviderId.ANTHROPIC: ProviderPreset(
            id=ProviderId.ANTHROPIC,
            display_name="Anthropic",
            protocol=WireProtocol.ANTHROPIC_MESSAGES,
            base_url="https://api.anthropic.com",
            auth_style=AuthStyle.X_API_KEY,
            model_list_path="/v1/models",
            auth_check_path="/v1/models",
            credential_kinds=_BEARER_KINDS,
            extra_headers=MappingProxyType({"anthropic-version": ANTHROPIC_VERSION}),
        ),
        ProviderId.GEMINI: ProviderPreset(
            id=ProviderId.GEMINI,
            display_name="Google Gemini",
            protocol=WireProtocol.GEMINI_GENERATE,
            base_url="https://generativelanguage.googleapis.com",
            auth_style=AuthStyle.X_GOOG_API_KEY,
            model_list_path="/v1beta/models",
            auth_check_path="/v1beta/models",
            credential_kinds=_KEYED,
        ),
        ProviderId.OPENROUTER: ProviderPreset(
            id=ProviderId.OPENROUTER,
            display_name="OpenRouter",
            protocol=WireProtocol.OPENAI_CHAT,
            base_url="https://openrouter.ai/api/v1",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            # /models is public and proves nothing about the key.
            auth_check_path="/key",
            credential_kinds=_KEYED,
        ),
        ProviderId.XAI: ProviderPreset(
            id=ProviderId.XAI,
            display_name="xAI Grok",
            protocol=WireProtocol.OPENAI_CHAT,
            base_url="https://api.x.ai/v1",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            auth_check_path="/models",
            credential_kinds=_KEYED,
        ),
        ProviderId.MISTRAL: ProviderPreset(
            id=ProviderId.MISTRAL,
            display_name="Mistral",
            protocol=WireProtocol.OPENAI_CHAT,
            base_url="https://api.mistral.ai/v1",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            auth_check_path="/models",
            credential_kinds=_KEYED,
        ),
        ProviderId.MOONSHOT: ProviderPreset(
            id=ProviderId.MOONSHOT,
            display_name="Moonshot Kimi",
            protocol=WireProtocol.OPENAI_CHAT,
            base_url="https://api.moonshot.ai/v1",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            auth_check_path="/models",
            credential_kinds=_KEYED,
        ),
        ProviderId.ELEVENLABS: ProviderPreset(
            id=ProviderId.ELEVENLABS,
            display_name="ElevenLabs",
            protocol=WireProtocol.ELEVENLABS,
            base_url="https://api.elevenlabs.io",
            auth_style=AuthStyle.XI_API_KEY,
            model_list_path="/v1/models",
            auth_check_path="/v1/user",
            credential_kinds=_KEYED,
            voice_roles=frozenset({Capability.STT, Capability.TTS}),
            audio_protocol=WireProtocol.ELEVENLABS,
        ),
        ProviderId.OPENAI_COMPATIBLE: ProviderPreset(
            id=ProviderId.OPENAI_COMPATIBLE,
            display_name="OpenAI-compatible endpoint",
            protocol=WireProtocol.OPENAI_CHAT,
            # No default: vLLM, Ollama and llama.cpp each live where their operator put them.
            base_url="",
            auth_style=AuthStyle.BEARER,
            model_list_path="/models",
            auth_check_path="/models",
            credential_kinds=frozenset(
                {CredentialKind.API_KEY, CredentialKind.BEARER_TOKEN, CredentialKind.NONE}
            ),
            voice_roles=frozenset({Capability.STT, Capability.TTS}),
            audio_protocol=WireProtocol.OPENAI_AUDIO,
        ),
        ProviderId.INTERNAL: ProviderPreset(
            id=ProviderId.INTERNAL,
            display_name="Built-in offline engines",
            protocol=WireProtocol.INTERNAL,
            base_url="",
            auth_style=AuthStyle.NONE,
            model_list_path=None,
            auth_check_path=None,
            credential_kinds=frozenset({CredentialKind.NONE}),
            voice_roles=frozenset({Capability.STT, Capability.TTS}),
            audio_protocol=WireProtocol.INTERNAL,
        ),
    }
)


def preset(provider: ProviderId | str) -> ProviderPreset:
    # A str enum: a member and its value find the same row, with no `ProviderId(...)` call.
    found = PRESETS.get(provider)  # type: ignore[arg-type]
    return found if found is not None else PRESETS[ProviderId(provider)]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """`provider/model`, split on the first `/`.

    The provider part is a provider id or the name of an org's custom connection.
    """

    provider: str
    model: str

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        provider, sep, model = ref.strip().partition("/")
        if not sep or not provider or not model:
            raise ValueError(f"model ref must look like provider/model, got {ref!r}")
        return cls(provider=provider.lower(), model=model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"
