"""The pure core of the OpenClaw import: parsed files and options in, a typed `Plan` out.

No database, no environment (the options carry what may be read), no clock (the options carry
`now_ms`). Running it twice on the same input gives the same plan, which is what makes a dry
run report exactly what a real run does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.contract import CredentialKind
from server.openclaw.chains import read_chains
from server.openclaw.items import ConnectionPlan, Plan
from server.openclaw.options import Inputs, Options
from server.openclaw.profiles import Credential, key_from, read_profiles
from server.openclaw.providers import CustomProvider, read_providers
from server.openclaw.source import as_mapping
from server.openclaw.state import read_cooldowns, read_orders

SUPPORTED_VERSION = 1


def build_plan(inputs: Inputs, options: Options) -> Plan:
    plan = Plan()
    store = _store(plan, inputs)
    config = inputs.config or {}
    custom = read_providers(plan, config, options)
    targets = {c.openclaw_id: (c.provider, c.name) for c in custom}
    creds = read_profiles(plan, store, config, targets, options)
    by_custom = {c.openclaw_id: c for c in custom}
    for cred in creds:
        if cred.openclaw_provider not in by_custom:
            plan.connections.append(
                ConnectionPlan(cred.item, cred.provider, cred.name, cred.key, cred.kind, notes=cred.notes)
            )
    imported = _custom_connections(plan, custom, creds, options)
    for cred in creds:
        if cred.openclaw_provider in by_custom and cred.openclaw_provider not in imported:
            plan.skip(
                cred.item, f"its custom provider {cred.openclaw_provider!r} is not imported", cred.profile_id
            )
    creds = [c for c in creds if c.openclaw_provider not in by_custom or c.openclaw_provider in imported]
    read_orders(plan, store, config, creds)
    read_cooldowns(plan, store.get("usageStats"), creds, options.now_ms)
    read_chains(plan, config, {k: v for k, v in by_custom.items() if k in imported}, options)
    if store.get("lastGood"):
        plan.skip(
            "lastGood", "not imported: OpenClaw does not prioritise it either (it would defeat round-robin)"
        )
    voice = as_mapping(as_mapping(as_mapping(config.get("plugins")).get("entries")).get("voice-call"))
    if voice:
        plan.skip(
            "plugins.entries.voice-call",
            "voice-call settings are not imported; configure telephony in Patchbay (docs/voice.md)",
        )
    return plan


def _store(plan: Plan, inputs: Inputs) -> Mapping[str, Any]:
    """The single-file store, or the split era's secrets with their state file laid over it."""
    store = dict(inputs.profiles)
    version = store.get("version")
    if version is not None and version != SUPPORTED_VERSION:
        plan.skip(
            "version",
            f"store version {version!r} is not {SUPPORTED_VERSION}; read as version {SUPPORTED_VERSION}",
        )
    if inputs.state is not None:
        for key in ("order", "lastGood", "usageStats"):
            if key in inputs.state:
                store[key] = inputs.state[key]
    return store


def _custom_connections(
    plan: Plan, custom: list[CustomProvider], creds: list[Credential], options: Options
) -> set[str]:
    """One connection per custom provider; its key from its first profile (OpenClaw's preference),
    else from its `apiKey`. Returns the OpenClaw ids of the providers planned."""
    planned: set[str] = set()
    for provider in custom:
        own = [c for c in creds if c.openclaw_provider == provider.openclaw_id]
        notes = list(provider.notes)
        item = provider.item
        if own:
            first, rest = own[0], own[1:]
            item = f"{provider.item} + {first.item}"
            key, kind = first.key, first.kind
            if provider.api_key is not None:
                notes.append("key taken from the profile, which OpenClaw prefers over apiKey")
            for other in rest:
                plan.skip(
                    other.item,
                    f"a custom endpoint has one key; {first.item} gives it",
                    provider_target(provider),
                )
        elif provider.api_key is not None:
            found = key_from(provider.api_key, options)
            if isinstance(found, str):
                plan.refuse(item, found, provider_target(provider))
                continue
            key, kind = found, CredentialKind.API_KEY
        elif provider.provider.value == "anthropic":
            plan.refuse(
                item,
                "an Anthropic-protocol endpoint needs a key (apiKey or an auth profile)",
                provider_target(provider),
            )
            continue
        else:
            key, kind = None, CredentialKind.NONE
        plan.connections.append(
            ConnectionPlan(
                item,
                provider.provider,
                provider.name,
                key,
                kind,
                provider.base_url,
                provider.models,
                tuple(notes),
            )
        )
        planned.add(provider.openclaw_id)
    return planned


def provider_target(provider: CustomProvider) -> str:
    return f"{provider.provider.value}:{provider.name}"
