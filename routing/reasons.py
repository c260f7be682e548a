"""Plain words for the resolver's skip reasons (`skipped:<why>[:<detail>]`, docs/routing.md).

One function per `<why>`; a reason nobody has written words for yet shows its code, so a reason
the resolver gains later is still explained, if tersely. `routing.explain` fills in the context
(the ref, the profile, the intent, the tier, when a window ends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from providers.contract import ModelRef
from routing.intents import Intent

TRANSIENT = frozenset({"cooldown", "disabled"})
"""Reasons that end by themselves at `until`: a model held back only by these is waiting."""
SOURCE_WORDS = {
    "platform": "platform models",
    "byok": "your own provider keys (BYOK)",
    "private": "private endpoints",
}


_CAPABILITY_WORDS = {
    "text": "write text",
    "vision": "read images",
    "tools": "call tools",
    "json": "answer in JSON",
    "audio_in": "listen to audio",
    "audio_out": "speak audio",
    "stt": "transcribe speech",
    "tts": "speak text",
}
_FAILURE_WORDS = {
    "rate_limit": "a rate limit",
    "timeout": "a timeout",
    "not_found": "the provider said the model does not exist",
    "permission": "the provider refused access to the model",
    "overloaded": "the provider was overloaded",
    "server_error": "a provider server error",
    "network": "a network error",
    "billing": "the provider said the key's quota or billing is exhausted",
    "auth": "the provider refused the key",
}


@dataclass(frozen=True, slots=True)
class Context:
    """What a reason's words may mention."""

    ref: ModelRef
    profile: str | None
    intent: Intent
    tier: str
    until: float | None
    allowed_on_tier: str | None


def _until(ctx: Context) -> str:
    if ctx.until is None:
        return "later"
    return datetime.fromtimestamp(ctx.until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _no_connection(detail: str, ctx: Context) -> str:
    return f"no connection: the org has no connection that serves {ctx.ref.provider!r}; add one on the AI Connections page"


def _status(detail: str, ctx: Context) -> str:
    if detail == "revoked":
        return (
            f"no connection: the key of {ctx.profile} was revoked; set a new key on the AI Connections page"
        )
    return f"no connection: {ctx.profile} is switched off; enable it on the AI Connections page"


def _tier(detail: str, ctx: Context) -> str:
    what = SOURCE_WORDS.get(detail, detail)
    where = f"not allowed on the {ctx.tier} tier: {what} ({ctx.profile})"
    return (
        f"{where} need the {ctx.allowed_on_tier} tier or above"
        if ctx.allowed_on_tier
        else f"{where} are allowed on no tier"
    )


def _flag(detail: str, ctx: Context) -> str:
    what = SOURCE_WORDS.get(detail, detail)
    return f"switched off by a feature flag for this org: {what} ({ctx.profile}); see `patchbay flags list`"


def _not_offered(detail: str, ctx: Context) -> str:
    return f"{ctx.profile} does not declare the model {ctx.ref.model!r}; add it to that connection's models"


def _capability(detail: str, ctx: Context) -> str:
    return f"missing capability: {ctx.ref.model} cannot {_CAPABILITY_WORDS.get(detail, detail)} ({detail}), which {ctx.intent.value} needs"


def _cooldown(detail: str, ctx: Context) -> str:
    return f"cooling down until {_until(ctx)} after {_FAILURE_WORDS.get(detail, detail)} on {ctx.profile}"


def _disabled(detail: str, ctx: Context) -> str:
    return f"{ctx.profile} is paused until {_until(ctx)}: {_FAILURE_WORDS.get(detail, detail)}"


def _gate(detail: str, ctx: Context) -> str:
    return f"blocked by a conformance gate: {ctx.ref} has not passed the {detail} conformance check on {ctx.profile}"


def _no_adapter(detail: str, ctx: Context) -> str:
    return f"Patchbay cannot send chat requests over the {detail} protocol"


_TEXTS: Mapping[str, Callable[[str, Context], str]] = {
    "no_connection": _no_connection,
    "status": _status,
    "tier": _tier,
    "flag": _flag,
    "model_not_offered": _not_offered,
    "capability": _capability,
    "cooldown": _cooldown,
    "disabled": _disabled,
    "gate": _gate,
    "no_adapter": _no_adapter,
}


def reason_text(code: str, ctx: Context) -> str:
    """Plain words for a `skipped:<why>[:<detail>]` code; an unknown one shows its code."""
    _, _, rest = code.partition(":")
    why, _, detail = rest.partition(":")
    words = _TEXTS.get(why)
    return words(detail, ctx) if words is not None else f"cannot be used ({code})"
