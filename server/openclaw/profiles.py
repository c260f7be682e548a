"""Auth profiles (`profiles` in the store) into credentials for Patchbay connections.

OpenClaw's eligibility rules decide what is importable: the id is `provider:name` and agrees
with the `provider` field after normalisation, the type is `api_key` or `token` (OAuth is
refreshed by OpenClaw itself and cannot be carried over), the key is not blank, a token is not
expired, and config `auth.profiles.<id>.mode` agrees with the stored type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from providers.contract import PRESETS, AuthStyle, CredentialKind, ProviderId
from providers.vault.secret import Secret
from routing.connections import MAX_KEY_CHARS
from server.openclaw.items import Plan
from server.openclaw.options import Options
from server.openclaw.source import (
    PATCHBAY_PROVIDERS,
    Unsupported,
    as_mapping,
    described,
    label,
    normalize_provider,
    resolve,
    secret_value,
    shown,
)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MODES = frozenset({"api_key", "token", "oauth", "aws-sdk"})
_KINDS = {"api_key": CredentialKind.API_KEY, "token": CredentialKind.BEARER_TOKEN}
_FIELDS = {"api_key": ("key", "keyRef"), "token": ("token", "tokenRef")}


@dataclass(frozen=True, slots=True)
class Credential:
    """An importable profile: its key and the Patchbay connection it belongs to."""

    item: str
    raw_id: str
    openclaw_provider: str
    provider: ProviderId
    name: str
    key: Secret
    kind: CredentialKind
    notes: tuple[str, ...]

    @property
    def profile_id(self) -> str:
        return f"{self.provider.value}:{self.name}"


def profile_label(raw_id: object) -> str:
    return label("profile", raw_id)


def key_from(value: object, options: Options) -> Secret | str:
    """A usable key as a `Secret`, or the reason there is none (the value itself is never quoted)."""
    found = resolve(secret_value(value), resolve_env=options.resolve_env, environ=options.environ)
    if found is None:
        return "it has no key"
    if isinstance(found, Unsupported):
        return found.reason
    if not found.strip():
        return "its key is empty or whitespace"
    if len(found) > MAX_KEY_CHARS:
        return f"its key is longer than {MAX_KEY_CHARS} characters"
    return Secret(found)


def read_profiles(
    plan: Plan,
    store: Mapping[str, Any],
    config: Mapping[str, Any],
    custom: Mapping[str, tuple[ProviderId, str]],
    options: Options,
) -> list[Credential]:
    """Every store profile either becomes a `Credential` or is reported on `plan`.

    `custom` maps a custom provider's OpenClaw id to the connection that models.providers declares.
    """
    profiles = store.get("profiles")
    if not isinstance(profiles, Mapping):
        plan.refuse("profiles", "the store has no `profiles` object")
        return []
    modes = as_mapping(as_mapping(config.get("auth")).get("profiles"))
    out: list[Credential] = []
    taken: dict[str, str] = {}
    for raw_id, entry in profiles.items():
        cred = _one(plan, raw_id, entry, modes, custom, options)
        if cred is None:
            continue
        if cred.profile_id in taken:
            plan.refuse(
                cred.item, f"it is the same Patchbay connection as {taken[cred.profile_id]}", cred.profile_id
            )
            continue
        taken[cred.profile_id] = cred.item
        out.append(cred)
    return out


def _one(
    plan: Plan,
    raw_id: str,
    entry: object,
    modes: Mapping[str, Any],
    custom: Mapping[str, tuple[ProviderId, str]],
    options: Options,
) -> Credential | None:
    item = profile_label(raw_id)
    if not isinstance(entry, Mapping):
        plan.refuse(item, "the profile is not a JSON object")
        return None
    id_provider, sep, id_name = raw_id.partition(":")
    if not sep or not id_provider.strip() or not id_name.strip():
        plan.refuse(item, "profile ids look like provider:name")
        return None
    provider = normalize_provider(id_provider)
    notes: list[str] = []
    if provider != id_provider:
        notes.append(f"provider id {shown(id_provider)} normalised to {provider!r}")
    stored = entry.get("provider", id_provider)
    if not isinstance(stored, str) or normalize_provider(stored) != provider:
        plan.refuse(item, f"its id names provider {provider!r} but its provider field names another")
        return None
    kind_name = entry.get("type")
    if kind_name == "oauth":
        plan.refuse(
            item,
            "OAuth profiles are not importable: OpenClaw refreshes them itself; add an API key or token for this provider",
        )
        return None
    if kind_name not in _KINDS:
        plan.refuse(item, f"unknown credential type: {described(kind_name)} (importable: api_key, token)")
        return None
    mode = as_mapping(modes.get(raw_id)).get("mode")
    if mode is not None and mode != kind_name and not (mode == "oauth" and kind_name == "token"):
        plan.refuse(
            item,
            f"config auth.profiles says mode {described(mode, MODES)} but the store holds type {kind_name!r}; OpenClaw drops it too",
        )
        return None
    if provider in PATCHBAY_PROVIDERS:
        pid, name = PATCHBAY_PROVIDERS[provider], id_name.strip().lower()
        if pid.value != provider:
            notes.append(f"OpenClaw provider {provider!r} is Patchbay's {pid.value!r}")
    elif provider in custom:
        pid, name = custom[provider]
    else:
        plan.skip(
            item,
            f"{provider!r} is not a provider Patchbay supports, and no models.providers entry (--config) declares it",
        )
        return None
    if not options.allows(provider, pid):
        plan.skip(item, f"provider {provider!r} is not in the allowlist (--allow)")
        return None
    if not NAME_RE.match(name):
        plan.refuse(
            item,
            "its name is not a Patchbay connection name (1-64 lower-case letters, digits, '_', '.', '-')",
        )
        return None
    if id_name.strip() != name and provider not in custom:
        notes.append(f"name lower-cased to {name!r}")
    kind = _KINDS[kind_name]
    if kind not in PRESETS[pid].credential_kinds:
        plan.refuse(
            item,
            f"{PRESETS[pid].display_name} takes API keys only; a {kind_name} profile cannot be used with it",
        )
        return None
    if kind is CredentialKind.BEARER_TOKEN and PRESETS[pid].auth_style is not AuthStyle.BEARER:
        notes.append(
            f"sent in the {PRESETS[pid].auth_style.value} header like a key; "
            "test it with `patchbay connection test` (a token that needs Authorization: Bearer fails there)"
        )
    expired = _expired(entry, kind_name, options.now_ms)
    if expired:
        plan.refuse(item, expired)
        return None
    literal, reference = _FIELDS[kind_name]
    key = key_from(entry.get(literal) if entry.get(literal) is not None else entry.get(reference), options)
    if isinstance(key, str):
        plan.refuse(item, key)
        return None
    return Credential(item, raw_id, provider, pid, name, key, kind, tuple(notes))


def _expired(entry: Mapping[str, Any], kind_name: str, now_ms: int) -> str | None:
    if kind_name != "token" or entry.get("expires") is None:
        return None
    expires = entry["expires"]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return f"its expires is {described(expires)}, expected milliseconds since the epoch as a number"
    if 0 < expires <= now_ms:
        return f"the token expired at {datetime.fromtimestamp(expires / 1000, UTC).isoformat()}"
    return None
