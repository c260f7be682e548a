"""Custom providers (`models.providers` in openclaw.json) into Patchbay connections.

An `openai-completions` provider becomes a custom endpoint (`openai_compatible:<id>`, so its
refs `<id>/<model>` keep working); an `anthropic-messages` one an Anthropic connection named
`<id>` at its base URL (refs become `anthropic:<id>/<model>`). Declared models keep their
capabilities: text, vision when `input` has `image`, tools unless `compat.supportsTools` is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.contract import Capability, ProviderId
from server.openclaw.items import Plan
from server.openclaw.options import Options
from server.openclaw.profiles import NAME_RE
from server.openclaw.source import (
    PATCHBAY_PROVIDERS,
    as_mapping,
    described,
    label,
    normalize_provider,
    printable,
    shown,
)

APIS = frozenset(
    {
        "openai-completions",
        "openai-responses",
        "openai-codex-responses",
        "anthropic-messages",
        "google-generative-ai",
        "github-copilot",
        "bedrock-converse-stream",
        "ollama",
    }
)
"""OpenClaw's `ModelApi` values, which a report may quote."""
AUTHS = frozenset({"api-key", "aws-sdk", "oauth", "token"})
PROTOCOLS: Mapping[str, ProviderId] = {
    "openai-completions": ProviderId.OPENAI_COMPATIBLE,
    "anthropic-messages": ProviderId.ANTHROPIC,
}


@dataclass(frozen=True, slots=True)
class CustomProvider:
    item: str
    openclaw_id: str
    provider: ProviderId
    name: str
    base_url: str
    models: tuple[dict[str, Any], ...]
    api_key: object
    """The raw `apiKey` value (literal, `${VAR}` or SecretRef); resolved only when no profile gives a key."""
    notes: tuple[str, ...]

    @property
    def ref_prefix(self) -> str:
        """What its model refs start with in Patchbay."""
        return (
            self.name
            if self.provider is ProviderId.OPENAI_COMPATIBLE
            else f"{self.provider.value}:{self.name}"
        )


def read_providers(plan: Plan, config: Mapping[str, Any], options: Options) -> list[CustomProvider]:
    providers = as_mapping(config.get("models")).get("providers")
    if providers is None:
        return []
    if not isinstance(providers, Mapping):
        plan.refuse("models.providers", "models.providers is not a JSON object")
        return []
    out: list[CustomProvider] = []
    for raw, entry in providers.items():
        found = _one(plan, raw, entry, options)
        if found is not None:
            out.append(found)
    return out


def _one(plan: Plan, raw: str, entry: object, options: Options) -> CustomProvider | None:
    openclaw_id = normalize_provider(raw)
    item = f"models.providers.{raw}" if printable(raw) else label("models.providers entry", raw)
    if not isinstance(entry, Mapping):
        plan.refuse(item, "the provider entry is not a JSON object")
        return None
    if openclaw_id in PATCHBAY_PROVIDERS:
        plan.skip(item, "settings of a built-in provider are not imported; Patchbay uses its own preset")
        return None
    notes: list[str] = [] if openclaw_id == raw else [f"provider id normalised to {openclaw_id!r}"]
    api = entry.get("api", "openai-completions")
    if "api" not in entry:
        notes.append("no api given: taken as openai-completions")
    provider = PROTOCOLS.get(api) if isinstance(api, str) else None
    if provider is None:
        plan.refuse(
            item,
            f"protocol {described(api, APIS)} is not one Patchbay speaks (openai-completions, anthropic-messages)",
        )
        return None
    if entry.get("auth") not in (None, "api-key", "token"):
        plan.refuse(
            item, f"auth {described(entry.get('auth'), AUTHS)} is not importable (api-key or token only)"
        )
        return None
    if not options.allows(openclaw_id, provider):
        plan.skip(item, f"provider {openclaw_id!r} is not in the allowlist (--allow)")
        return None
    if not NAME_RE.match(openclaw_id) or openclaw_id in {p.value for p in ProviderId}:
        plan.refuse(
            item,
            "its id is not usable as a Patchbay connection name (1-64 lower-case letters, digits, '_', '.', '-')",
        )
        return None
    base_url = entry.get("baseUrl")
    if not isinstance(base_url, str) or not base_url.strip():
        plan.refuse(item, "it has no baseUrl")
        return None
    if provider is ProviderId.ANTHROPIC:
        notes.append(f"joins the anthropic profiles; refs anthropic:{openclaw_id}/MODEL pin it")
    models = _models(entry.get("models"), notes)
    headers = as_mapping(entry.get("headers"))
    if headers:
        notes.append(f"{len(headers)} custom header(s) not imported")
    if any(isinstance(m, Mapping) and m.get("cost") for m in entry.get("models") or []):
        notes.append("model costs not imported (declare prices with `patchbay connection update --price`)")
    return CustomProvider(
        item, openclaw_id, provider, openclaw_id, base_url.strip(), models, entry.get("apiKey"), tuple(notes)
    )


def _models(raw: object, notes: list[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list):
        if raw is not None:
            notes.append("models is not a list: no models declared")
        return ()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, model in enumerate(raw):
        model_id = model.get("id") if isinstance(model, Mapping) else None
        if not isinstance(model_id, str) or not model_id.strip() or len(model_id) > 255:
            notes.append(f"model #{index} dropped: it has no usable id")
            continue
        if model_id.strip() in seen:
            notes.append(f"model {shown(model_id)} declared twice: the first kept")
            continue
        seen.add(model_id.strip())
        caps = {Capability.TEXT.value}
        inputs = model.get("input")
        if isinstance(inputs, list) and "image" in inputs:
            caps.add(Capability.VISION.value)
        if as_mapping(model.get("compat")).get("supportsTools") is not False:
            caps.add(Capability.TOOLS.value)
        out.append({"id": model_id.strip(), "capabilities": sorted(caps)})
    return tuple(out)
