"""Reading OpenClaw's JSON shapes: documents, provider ids, model refs and secret values.

Pure functions over parsed JSON. Nothing here echoes a value that may be a secret: messages
name fields and references, never their contents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.contract import ProviderId

_ALIASES: Mapping[str, str] = {
    "z.ai": "zai",
    "z-ai": "zai",
    "opencode-zen": "opencode",
    "qwen": "qwen-portal",
    "kimi-code": "kimi-coding",
    "bedrock": "amazon-bedrock",
    "aws-bedrock": "amazon-bedrock",
}
"""OpenClaw's `normalizeProviderId`: lower-case, trimmed, then these aliases."""

PATCHBAY_PROVIDERS: Mapping[str, ProviderId] = {
    **{p.value: p for p in ProviderId if p not in (ProviderId.INTERNAL, ProviderId.OPENAI_COMPATIBLE)},
    "google": ProviderId.GEMINI,
}
"""OpenClaw provider ids (normalised) that name a Patchbay provider."""

_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,128}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ENV_FORM = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$|^\$([A-Za-z_][A-Za-z0-9_]*)$")


class FileError(Exception):
    """A whole input file is unusable (not JSON, not an object); nothing is imported."""


def load_document(text: str, *, name: str) -> dict[str, Any]:
    """Parse one input file; the message names the file and position, never its contents."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileError(f"{name} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise FileError(f"{name} must hold a JSON object, found {type(doc).__name__}")
    return doc


def printable(value: object) -> bool:
    """An identifier (profile id, provider id, model ref) short and plain enough to print."""
    return isinstance(value, str) and _SAFE_TEXT.match(value) is not None


def shown(value: object) -> str:
    """An identifier for a report: quoted when printable, else only described."""
    if printable(value):
        return repr(value)
    return f"a {type(value).__name__} value" if not isinstance(value, str) else "an unprintable string"


def label(prefix: str, value: object) -> str:
    """How a report names an input item, e.g. `profile openai:default`."""
    return f"{prefix} {value}" if printable(value) else f"{prefix} {shown(value)}"


def described(value: object, known: frozenset[str] = frozenset()) -> str:
    """A value from a field that may hold anything (even a pasted key): quoted only when it is one
    of the `known` words, otherwise only its JSON type is named."""
    if isinstance(value, str) and value in known:
        return repr(value)
    names = {
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return (
        "null"
        if value is None
        else names.get(type(value), "a value") + (" not recognised" if isinstance(value, str) else "")
    )


def normalize_provider(value: str) -> str:
    normalized = value.strip().lower()
    return _ALIASES.get(normalized, normalized)


def split_ref(ref: str) -> tuple[str, str] | None:
    """`provider/model` split on the first `/`, the provider normalised; None when malformed."""
    provider, sep, model = ref.strip().partition("/")
    if not sep or not provider.strip() or not model.strip():
        return None
    return normalize_provider(provider), model.strip()


@dataclass(frozen=True, slots=True)
class EnvRef:
    """A key given as a reference to an environment variable (`${VAR}`, `$VAR`, or a SecretRef)."""

    name: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A SecretRef this importer cannot follow (`file`, `exec`), or a malformed one."""

    reason: str


SecretValue = str | EnvRef | Unsupported | None


def secret_value(value: object) -> SecretValue:
    """What a key field holds: a literal, a reference, something unusable, or nothing."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _ENV_FORM.match(value.strip())
        if match:
            return EnvRef(match.group(1) or match.group(2))
        return value
    if isinstance(value, Mapping):
        source, ref_id = value.get("source"), value.get("id")
        if source == "env" and isinstance(ref_id, str) and _ENV_NAME.match(ref_id):
            return EnvRef(ref_id)
        if source in ("file", "exec"):
            return Unsupported(f"its key is a {source} SecretRef, which the importer does not follow")
        return Unsupported("its key reference is not a SecretRef {source: env, id: VAR}")
    return Unsupported(f"its key is {described(value)}, expected a string")


def resolve(value: SecretValue, *, resolve_env: bool, environ: Mapping[str, str]) -> str | Unsupported | None:
    """The literal key, or why there is none usable; env references are read only with `resolve_env`."""
    if isinstance(value, EnvRef):
        if not resolve_env:
            return Unsupported(
                f"its key is a reference to ${{{value.name}}}; re-run with --resolve-env to read it"
            )
        found = environ.get(value.name)
        if found is None or not found.strip():
            return Unsupported(f"its key references ${{{value.name}}}, which is not set (or empty) here")
        return found
    return value


def as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
