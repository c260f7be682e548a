"""Agents' primary + fallbacks (`agents.defaults`, `agents.list[]`) into Patchbay agent chains.

`model` becomes the agent's `chat` chain (and its default model), `imageModel` its `vision`
chain. Refs are rewritten to Patchbay's names (`google/...` → `gemini/...`, a custom
Anthropic-protocol provider `p/m` → `anthropic:p/m`); a ref to a provider that is neither
allowlisted nor imported is dropped and named in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.openclaw.items import ChainPlan, Plan
from server.openclaw.options import Options
from server.openclaw.profiles import NAME_RE
from server.openclaw.providers import CustomProvider
from server.openclaw.source import PATCHBAY_PROVIDERS, as_mapping, shown, split_ref

DEFAULT_AGENT = "main"
"""OpenClaw's default agent id; `agents.defaults` is imported as this agent."""
_INTENTS = {"model": "chat", "imageModel": "vision"}


def read_chains(
    plan: Plan, config: Mapping[str, Any], custom: Mapping[str, CustomProvider], options: Options
) -> None:
    agents = as_mapping(config.get("agents"))
    defaults = agents.get("defaults")
    if defaults is not None:
        _agent(plan, "agents.defaults", DEFAULT_AGENT, defaults, custom, options)
        if as_mapping(defaults).get("models"):
            plan.skip(
                "agents.defaults.models",
                "the model allowlist is not imported; set one with `patchbay agent routing --org ORG --allow REF`",
            )
    listed = agents.get("list")
    if isinstance(listed, list):
        for index, entry in enumerate(listed):
            agent_id = as_mapping(entry).get("id")
            item = f"agents.list[{index}]"
            if (
                not isinstance(agent_id, str)
                or not NAME_RE.match(agent_id.strip().lower())
                or "." in agent_id
            ):
                plan.refuse(
                    item,
                    f"agent id {shown(agent_id)} is not a Patchbay agent name (lower-case letters, digits, '_', '-')",
                )
                continue
            _agent(plan, item, agent_id.strip().lower(), entry, custom, options)


def _agent(
    plan: Plan, item: str, name: str, entry: object, custom: Mapping[str, CustomProvider], options: Options
) -> None:
    entry = as_mapping(entry)
    chains: dict[str, list[str]] = {}
    notes: list[str] = []
    for key, intent in _INTENTS.items():
        chain = _chain(entry.get(key), f"{key}", custom, options, notes)
        if chain:
            chains[intent] = chain
    if "chat" not in chains:
        if entry.get("model") is not None or chains:
            plan.skip(
                item,
                "no importable primary model: " + "; ".join(notes or ["model.primary is missing"]),
                f"agent {name}",
            )
        return
    plan.chains.append(ChainPlan(item, name, chains["chat"][0], chains, tuple(notes)))


def _chain(
    value: object, where: str, custom: Mapping[str, CustomProvider], options: Options, notes: list[str]
) -> list[str]:
    if isinstance(value, str):
        refs: list[object] = [value]
    elif isinstance(value, Mapping):
        fallbacks = value.get("fallbacks") or []
        refs = [value.get("primary"), *(fallbacks if isinstance(fallbacks, list) else [])]
        if not isinstance(fallbacks, list):
            notes.append(f"{where}.fallbacks is not a list: ignored")
    else:
        return []
    out: list[str] = []
    for raw in refs:
        if raw is None:
            continue
        ref = _ref(raw, custom, options)
        if ref.startswith("!"):
            notes.append(f"{where}: {ref[1:]}")
        elif ref in out:
            notes.append(f"{where}: {ref} listed twice, the first kept")
        else:
            if isinstance(raw, str) and ref != raw:
                notes.append(f"{where}: {shown(raw)} is {ref} in Patchbay")
            out.append(ref)
    return out


def _ref(raw: object, custom: Mapping[str, CustomProvider], options: Options) -> str:
    """The Patchbay ref, or `!reason` when it is dropped."""
    parts = split_ref(raw) if isinstance(raw, str) else None
    if parts is None:
        return f"!{shown(raw)} dropped: refs look like provider/model"
    provider, model = parts
    if provider in PATCHBAY_PROVIDERS:
        pid = PATCHBAY_PROVIDERS[provider]
        if not options.allows(provider, pid):
            return f"!{provider}/{model} dropped: {provider!r} is not in the allowlist"
        return f"{pid.value}/{model}"
    if provider in custom:
        return f"{custom[provider].ref_prefix}/{model}"
    return f"!{provider}/{model} dropped: provider {provider!r} is neither a Patchbay provider nor an imported custom provider"
